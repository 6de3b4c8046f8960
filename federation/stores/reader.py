"""Reads through the providers, merging identical reads in flight and caching answers for a short time.

Fifty pods that start at the same moment ask for the same key: the first read goes to the store and
the other forty-nine wait for its answer. A rollout's pods do not all arrive in the same instant, so
an answer is also kept for ``--store-cache-ttl`` (default 3 s), counted from the moment its read was
sent to the store. Under gunicorn the workers share both through ``SharedReads``: one read per key,
not one per worker. Providers that only look up data they hold (``reads_in_memory``: the ``fake``
store, a ``kubernetes`` store of cluster-main's own Secrets) are read directly, neither merged nor cached.

The exact bound: every answer comes from a store read that started at most the TTL before the request
asked for it, or that was still running when the request asked. With ``--store-cache-ttl 0`` only the
second half holds. Errors are never cached. Nothing about *who* may read is cached here: the service
decides authorization for every request before it asks the reader, so a revoked grant is refused at
once; only a secret's value can be up to the TTL older than the store's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import cast

from federation.config.model import Configuration
from federation.errors import FederationError, StoreError
from federation.metrics import Metrics
from federation.stores.base import Provider, SecretData
from federation.stores.registry import StoreRegistry
from federation.stores.shared_reads import Claim, SharedReads

_Key = tuple[str, str]
# How often a worker looks whether another worker's read of its key has finished.
SHARED_POLL_SECONDS = 0.002
# Expired answers are dropped from memory once the cache holds more keys than this.
PRUNE_ABOVE = 256


class StoreReader:
    """``read(store, key)`` with in-flight merging and a short cache, shared by workers when given a table."""

    def __init__(
        self,
        registry: StoreRegistry,
        metrics: Metrics,
        cache_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        shared: SharedReads | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._shared = shared
        self._sleep = sleep
        self._lock = threading.Lock()
        self._in_flight: dict[_Key, Future[SecretData]] = {}
        self._cache: dict[_Key, tuple[float, SecretData]] = {}

    def read(self, config: Configuration, store: str, key: str) -> SecretData:
        """The data at ``key`` of ``store`` in ``config``; raises the provider's ``FederationError``."""
        provider, built_from = self._registry.built(config, store)
        if provider.reads_in_memory:
            return self._read_from_store(provider, store, key)
        # Keyed by what the provider was built from too: a store whose spec changed (another server,
        # another path, another token) is never answered from the old spec's read in the cache or in flight.
        slot = f"{store}#{built_from[:16]}"
        wanted = (slot, key)
        with self._lock:
            cached = self._cache.get(wanted)
            if cached is not None and cached[0] > self._clock():
                self._metrics.child(self._metrics.store_merged_reads, store, "cache").inc()
                return cached[1]
            pending = self._in_flight.get(wanted)
            leader = pending is None
            if pending is None:
                pending = self._in_flight[wanted] = Future()
        if not leader:
            self._metrics.child(self._metrics.store_merged_reads, store, "in_flight").inc()
            return pending.result()
        expires = 0.0
        try:
            data, expires = self._read_once(provider, store, slot, key)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set_result(data)
            return data
        finally:
            with self._lock:
                del self._in_flight[wanted]
                if expires > self._clock():
                    self._cache[wanted] = (expires, pending.result())
                    self._prune()

    def _read_once(self, provider: Provider, store: str, slot: str, key: str) -> tuple[SecretData, float]:
        """The answer and until when it may be served: from another worker, or read here and shared."""
        if self._shared is None:
            started = self._clock()
            return self._read_from_store(provider, store, key), started + self._cache_ttl
        shared = self._shared
        claim = shared.claim(slot, key, self._clock())
        how = "in_flight" if claim.kind == "wait" else "cache"
        while claim.kind == "wait":
            self._sleep(SHARED_POLL_SECONDS)
            claim = shared.claim(slot, key, self._clock(), waiting_for=claim.started)
        if claim.kind == "hit":
            self._metrics.child(self._metrics.store_merged_reads, store, how).inc()
            return cast(SecretData, claim.data), claim.expires
        return self._lead(shared, provider, (store, slot), key, claim)

    def _lead(
        self, shared: SharedReads, provider: Provider, store: tuple[str, str], key: str, claim: Claim
    ) -> tuple[SecretData, float]:
        """Read for every worker: the answer is published, or the slot freed when the read fails."""
        try:
            data = self._read_from_store(provider, store[0], key)
        except BaseException:
            shared.abandon(store[1], key, claim)
            raise
        expires = claim.started + self._cache_ttl
        shared.publish(store[1], key, claim, expires, data)
        return data, expires

    def _prune(self) -> None:
        if len(self._cache) > PRUNE_ABOVE:
            now = self._clock()
            for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[stale]

    def _read_from_store(self, provider: Provider, store: str, key: str) -> SecretData:
        """One read sent to the store, counted and timed."""
        started = time.perf_counter()
        result = "ok"
        try:
            return provider.read(key)
        except FederationError as exc:
            result = type(exc).__name__
            raise
        except Exception as exc:
            result = "error"
            raise StoreError(f"store {store!r} failed to read key {key!r}") from exc
        finally:
            metrics = self._metrics
            metrics.child(metrics.store_reads, store, result).inc()
            metrics.child(metrics.store_read_seconds, store).observe(time.perf_counter() - started)
