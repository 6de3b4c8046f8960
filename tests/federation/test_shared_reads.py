"""Store reads shared by workers, and the cache's exact bound: counted from the start of the read.

Two ``StoreReader`` instances over one ``SharedReads`` table stand for two gunicorn workers (each has its
own in-process cache and merging); one test forks a real second process.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from federation.config.model import Configuration, StoreConfig
from federation.errors import StoreUnavailable
from federation.metrics import Metrics
from federation.settings import Settings
from federation.stores.base import SecretData
from federation.stores.reader import StoreReader
from federation.stores.registry import StoreRegistry, fingerprint
from federation.stores.shared_reads import SLOT_BYTES, SharedReads
from tests.federation.helpers_requests import post_secrets
from tests.helpers_stack import running_stack

CONFIG = Configuration(stores={"vault": StoreConfig("vault", "fake", {})})
PENDING_LIMIT = 5.0


class CountingProvider:
    """Answers ``{"password": "value-of-<key>"}`` after ``delay``; counts reads; may fail or move a clock."""

    reads_in_memory = False

    def __init__(self, delay: float = 0.0, answer_bytes: int = 0) -> None:
        self.delay = delay
        self.answer_bytes = answer_bytes
        self.reads = 0
        self.failures_left = 0
        self.on_read: Any = None
        self._lock = threading.Lock()

    def read(self, key: str) -> SecretData:
        with self._lock:
            self.reads += 1
            failing = self.failures_left > 0
            self.failures_left -= failing
        time.sleep(self.delay)
        if self.on_read is not None:
            self.on_read()
        if failing:
            raise StoreUnavailable("vault is sealed")
        return {"password": f"value-of-{key}", "padding": "x" * self.answer_bytes}

    def close(self) -> None:
        """Nothing to release."""


class OneProviderRegistry(StoreRegistry):
    def __init__(self, provider: CountingProvider) -> None:
        super().__init__(Settings())
        self._provider = provider

    def built(self, config: Configuration, store_name: str) -> tuple[Any, str]:
        return self._provider, fingerprint(config.stores[store_name], config)


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def worker(
    provider: CountingProvider, table: SharedReads | None, ttl: float, clock: Any = time.monotonic
) -> StoreReader:
    return StoreReader(OneProviderRegistry(provider), Metrics(), ttl, clock, shared=table)


def table() -> SharedReads:
    shared = SharedReads.create(pending_limit=PENDING_LIMIT)
    assert shared is not None, "memfd_create is available on Linux"
    return shared


def test_two_workers_asking_for_a_key_together_make_one_read_even_without_a_cache() -> None:
    provider, shared = CountingProvider(delay=0.4), table()
    workers = [worker(provider, shared, ttl=0), worker(provider, shared, ttl=0)]
    start = threading.Barrier(20)

    def one(index: int) -> SecretData:
        start.wait()
        return workers[index % 2].read(CONFIG, "vault", "db")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert provider.reads == 1
    assert answers == [{"password": "value-of-db", "padding": ""}] * 20
    # Without a cache the next request reads again.
    workers[1].read(CONFIG, "vault", "db")
    assert provider.reads == 2


def test_another_worker_takes_a_fresh_answer_from_the_table() -> None:
    provider, shared = CountingProvider(), table()
    first, second = worker(provider, shared, ttl=60), worker(provider, shared, ttl=60)
    first.read(CONFIG, "vault", "db")
    assert second.read(CONFIG, "vault", "db") == {"password": "value-of-db", "padding": ""}
    assert provider.reads == 1


def test_the_ttl_counts_from_the_moment_the_read_was_sent() -> None:
    clock, provider, shared = FakeClock(), CountingProvider(), table()

    def slow_store() -> None:
        clock.now += 0.8  # the store takes 0.8 s to answer

    provider.on_read = slow_store
    first, second = (
        worker(provider, shared, ttl=1.0, clock=clock),
        worker(provider, shared, ttl=1.0, clock=clock),
    )
    first.read(CONFIG, "vault", "db")  # sent at 5000.0, answered at 5000.8
    clock.now = 5000.99
    first.read(CONFIG, "vault", "db")
    second.read(CONFIG, "vault", "db")
    assert provider.reads == 1
    clock.now = 5001.0  # 1 s after the read was sent, though only 0.2 s after its answer
    first.read(CONFIG, "vault", "db")
    assert provider.reads == 2
    clock.now = 5002.0 - 0.001  # the second read was sent at 5001.0 and answered at 5001.8
    second.read(CONFIG, "vault", "db")
    assert provider.reads == 2


def test_when_the_reading_worker_fails_the_waiting_one_reads_itself() -> None:
    provider, shared = CountingProvider(delay=0.3), table()
    provider.failures_left = 1
    first, second = worker(provider, shared, ttl=60), worker(provider, shared, ttl=60)
    with ThreadPoolExecutor(2) as pool:
        failed = pool.submit(first.read, CONFIG, "vault", "db")
        time.sleep(0.1)
        waited = pool.submit(second.read, CONFIG, "vault", "db")
        with pytest.raises(StoreUnavailable):
            failed.result()
        assert waited.result() == {"password": "value-of-db", "padding": ""}
    assert provider.reads == 2


def test_a_read_left_pending_by_a_dead_worker_is_taken_over_after_the_limit() -> None:
    shared = table()
    dead = shared.claim("vault", "db", now=100.0)
    assert dead.kind == "lead"
    assert shared.claim("vault", "db", now=100.0 + PENDING_LIMIT - 0.01).kind == "wait"
    taken_over = shared.claim("vault", "db", now=100.0 + PENDING_LIMIT)
    assert taken_over.kind == "lead"
    shared.publish("vault", "db", dead, expires=200.0, data={"late": "answer"})  # no longer its slot
    shared.publish("vault", "db", taken_over, expires=200.0, data={"password": "fresh"})
    assert shared.claim("vault", "db", now=110.0).data == {"password": "fresh"}


def test_an_answer_too_large_for_a_slot_is_read_by_each_worker() -> None:
    provider, shared = CountingProvider(answer_bytes=SLOT_BYTES), table()
    first, second = worker(provider, shared, ttl=60), worker(provider, shared, ttl=60)
    first.read(CONFIG, "vault", "db")
    second.read(CONFIG, "vault", "db")
    assert provider.reads == 2
    first.read(CONFIG, "vault", "db")  # still cached in the worker that read it
    assert provider.reads == 2


def _forked_read(shared: SharedReads, results: Any) -> None:
    provider = CountingProvider()
    results.put((worker(provider, shared, ttl=60).read(CONFIG, "vault", "db"), provider.reads))


def test_a_forked_worker_sees_the_answer_its_sibling_read() -> None:
    provider, shared = CountingProvider(), table()
    worker(provider, shared, ttl=60).read(CONFIG, "vault", "db")
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_forked_read, args=(shared, results))
    child.start()
    answer, child_reads = results.get(timeout=30)
    child.join(30)
    assert (answer, child_reads, child.exitcode) == ({"password": "value-of-db", "padding": ""}, 0, 0)


def test_a_revoked_grant_is_refused_at_once_though_the_value_is_cached(tmp_path: Path) -> None:
    with running_stack(tmp_path, store_cache_ttl=3600.0) as stack:
        token = stack.mint()
        assert post_secrets(stack, token).status_code == 200
        since = stack.reload_count()
        stack.remove("allow-alpha-monitoring.yaml")
        stack.wait_for_reload(since)
        assert post_secrets(stack, token).status_code == 403
