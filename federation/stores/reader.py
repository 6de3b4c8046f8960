"""Reads through the providers, merging identical reads in flight and, optionally, caching them.

Fifty pods that start at the same moment ask for the same key: the first read goes to the store and
the other forty-nine wait for its answer. With ``--store-cache-ttl`` > 0 an answer is also kept that
long (trade-off: a rotated secret is served stale for up to the TTL). Errors are never cached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from federation.config.model import Configuration
from federation.errors import FederationError, StoreError
from federation.metrics import Metrics
from federation.stores.base import SecretData
from federation.stores.registry import StoreRegistry

_Key = tuple[str, str]


class StoreReader:
    """``read(store, key)`` with in-flight merging and an optional TTL cache."""

    def __init__(
        self,
        registry: StoreRegistry,
        metrics: Metrics,
        cache_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._registry = registry
        self._metrics = metrics
        self._cache_ttl = cache_ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight: dict[_Key, Future[SecretData]] = {}
        self._cache: dict[_Key, tuple[float, SecretData]] = {}

    def read(self, config: Configuration, store: str, key: str) -> SecretData:
        """The data at ``key`` of ``store`` in ``config``; raises the provider's ``FederationError``."""
        wanted = (store, key)
        with self._lock:
            cached = self._cache.get(wanted)
            if cached is not None and cached[0] > self._clock():
                self._metrics.store_merged_reads.labels(store, "cache").inc()
                return cached[1]
            pending = self._in_flight.get(wanted)
            leader = pending is None
            if pending is None:
                pending = self._in_flight[wanted] = Future()
        if not leader:
            self._metrics.store_merged_reads.labels(store, "in_flight").inc()
            return pending.result()
        try:
            data = self._read_from_store(config, store, key)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set_result(data)
            return data
        finally:
            with self._lock:
                del self._in_flight[wanted]
                if self._cache_ttl > 0 and not pending.exception():
                    self._cache[wanted] = (self._clock() + self._cache_ttl, pending.result())

    def _read_from_store(self, config: Configuration, store: str, key: str) -> SecretData:
        provider = self._registry.provider(config, store)
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
            self._metrics.store_reads.labels(store, result).inc()
            self._metrics.store_read_seconds.labels(store).observe(time.perf_counter() - started)
