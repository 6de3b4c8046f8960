"""ratelimit.py with an injected clock; stores/reader.py merging identical reads and its TTL cache."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from federation.config.model import Configuration, StoreConfig
from federation.errors import SecretNotFound, StoreUnavailable
from federation.metrics import Metrics
from federation.ratelimit import RateLimiter
from federation.settings import Settings
from federation.stores.base import SecretData
from federation.stores.reader import StoreReader
from federation.stores.registry import StoreRegistry, fingerprint


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- rate limit --------------------------------------------------------------------------------------

KEY = ("alpha", "system:serviceaccount:monitoring:prometheus-esi-client")


def test_a_burst_of_twice_the_rate_is_allowed_then_refused() -> None:
    limiter = RateLimiter(5.0, FakeClock())
    assert [limiter.acquire(KEY) for _ in range(10)] == [0] * 10
    assert limiter.acquire(KEY) >= 1


def test_tokens_come_back_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, clock)
    for _ in range(4):
        assert limiter.acquire(KEY) == 0
    assert limiter.acquire(KEY) == 1
    clock.now += 0.5  # one token
    assert limiter.acquire(KEY) == 0
    assert limiter.acquire(KEY) > 0
    clock.now += 100  # refilled, but never above the burst
    assert [limiter.acquire(KEY) for _ in range(5)] == [0, 0, 0, 0, 1]


def test_retry_after_is_the_whole_seconds_until_a_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.4, clock)
    assert limiter.acquire(KEY) == 0
    assert limiter.acquire(KEY) == 3  # 1 / 0.4 s = 2.5 s, rounded up
    clock.now += 2.5
    assert limiter.acquire(KEY) == 0


def test_a_rate_below_half_a_request_per_second_still_lets_requests_through() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.1, clock)  # twice the rate is less than one whole request
    assert limiter.acquire(KEY) == 0
    assert limiter.acquire(KEY) == 10
    clock.now += 10
    assert limiter.acquire(KEY) == 0


def test_each_cluster_and_subject_has_its_own_bucket() -> None:
    limiter = RateLimiter(1.0, FakeClock())
    assert [limiter.acquire(KEY) for _ in range(2)] == [0, 0]
    assert limiter.acquire(KEY) > 0
    assert limiter.acquire(("beta", KEY[1])) == 0
    assert limiter.acquire((KEY[0], "system:serviceaccount:monitoring:grafana")) == 0


def test_the_limiter_is_exact_under_concurrency() -> None:
    limiter = RateLimiter(50.0, FakeClock())
    with ThreadPoolExecutor(8) as pool:
        waits = list(pool.map(lambda _: limiter.acquire(KEY), range(400)))
    assert waits.count(0) == 100


# -- store reads -------------------------------------------------------------------------------------


class SlowProvider:
    """A provider that takes ``delay`` seconds per read and counts its reads."""

    reads_in_memory = False

    def __init__(self, delay: float, fail_with: Exception | None = None) -> None:
        self.delay = delay
        self.fail_with = fail_with
        self.reads = 0
        self._lock = threading.Lock()

    def read(self, key: str) -> SecretData:
        with self._lock:
            self.reads += 1
        time.sleep(self.delay)
        if self.fail_with is not None:
            raise self.fail_with
        if key == "missing":
            raise SecretNotFound(f"key {key!r} does not exist")
        return {"password": f"value-of-{key}"}

    def close(self) -> None:
        """Nothing to release."""


CONFIG = Configuration(stores={"slow": StoreConfig("slow", "fake", {})})


class FixedRegistry(StoreRegistry):
    """A registry that hands out one given provider for the store ``slow``."""

    def __init__(self, provider: Any) -> None:
        super().__init__(Settings())
        self._provider = provider

    def built(self, config: Configuration, store_name: str) -> tuple[Any, str]:
        return self._provider, fingerprint(config.stores[store_name], config)


def _reader(
    provider: SlowProvider, ttl: float = 0.0, clock: Callable[[], float] = time.monotonic
) -> StoreReader:
    return StoreReader(FixedRegistry(provider), Metrics(), ttl, clock)


def _burst(reader: StoreReader, key: str, count: int) -> list[Any]:
    start = threading.Barrier(count)

    def one(_: int) -> Any:
        start.wait()
        try:
            return reader.read(CONFIG, "slow", key)
        except Exception as exc:  # the test compares what every caller got
            return exc

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_50_concurrent_identical_reads_make_one_provider_read() -> None:
    provider = SlowProvider(delay=0.5)
    results = _burst(_reader(provider), "db", 50)
    assert provider.reads == 1
    assert results == [{"password": "value-of-db"}] * 50


def test_different_keys_are_not_merged() -> None:
    provider = SlowProvider(delay=0.05)
    reader = _reader(provider)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda key: reader.read(CONFIG, "slow", key), ["a", "b", "c", "d"]))
    assert provider.reads == 4
    assert [r["password"] for r in results] == ["value-of-a", "value-of-b", "value-of-c", "value-of-d"]


def test_a_merged_failure_reaches_every_waiter_and_is_not_kept() -> None:
    provider = SlowProvider(delay=0.3, fail_with=StoreUnavailable("vault is sealed"))
    reader = _reader(provider, ttl=60)
    results = _burst(reader, "db", 20)
    assert provider.reads == 1
    assert all(isinstance(result, StoreUnavailable) for result in results)
    provider.fail_with = None
    assert reader.read(CONFIG, "slow", "db") == {"password": "value-of-db"}
    assert provider.reads == 2


def test_not_found_is_not_cached() -> None:
    provider = SlowProvider(delay=0)
    reader = _reader(provider, ttl=60)
    for _ in range(2):
        with pytest.raises(SecretNotFound):
            reader.read(CONFIG, "slow", "missing")
    assert provider.reads == 2


def test_without_a_ttl_every_sequential_read_goes_to_the_store() -> None:
    provider = SlowProvider(delay=0)
    reader = _reader(provider)
    for _ in range(3):
        reader.read(CONFIG, "slow", "db")
    assert provider.reads == 3


def test_the_cache_serves_until_the_ttl_passes() -> None:
    clock = FakeClock()
    provider = SlowProvider(delay=0)
    reader = _reader(provider, ttl=10, clock=clock)
    reader.read(CONFIG, "slow", "db")
    clock.now += 9.9
    reader.read(CONFIG, "slow", "db")
    assert provider.reads == 1
    clock.now += 0.2
    reader.read(CONFIG, "slow", "db")
    assert provider.reads == 2


def test_a_provider_crash_becomes_a_store_error_without_its_message() -> None:
    from federation.errors import StoreError  # noqa: PLC0415

    provider = SlowProvider(delay=0, fail_with=RuntimeError("secret-looking detail pw-123"))
    with pytest.raises(StoreError) as caught:
        _reader(provider).read(CONFIG, "slow", "db")
    assert "pw-123" not in caught.value.detail


def test_a_changed_store_definition_is_never_answered_from_the_old_ones_cache() -> None:
    clock = FakeClock()
    provider = SlowProvider(delay=0)
    reader = _reader(provider, ttl=10, clock=clock)
    reader.read(CONFIG, "slow", "db")
    changed = Configuration(stores={"slow": StoreConfig("slow", "fake", {"data": []})})
    reader.read(changed, "slow", "db")
    assert provider.reads == 2  # within the TTL, but the spec is another one
    reader.read(changed, "slow", "db")
    assert provider.reads == 2


def test_a_provider_that_reads_in_memory_is_read_every_time_never_cached() -> None:
    provider = SlowProvider(delay=0)
    provider.reads_in_memory = True
    reader = _reader(provider, ttl=3600)
    assert [reader.read(CONFIG, "slow", "db") for _ in range(3)] == [{"password": "value-of-db"}] * 3
    assert provider.reads == 3
