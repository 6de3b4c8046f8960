"""Token buckets per (cluster, subject): ``rate`` requests/s, bursts of twice that."""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

MAX_TRACKED_SUBJECTS = 100_000


class RateLimiter:
    """``acquire(key)`` returns 0 when allowed, else the seconds to wait before retrying."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        # At least one whole token: below 0.5 requests/s (per worker) no request could ever pass.
        self._burst = max(1.0, 2 * rate)
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()

    def acquire(self, key: tuple[str, str]) -> int:
        """Take one token for ``key``; return 0, or the whole seconds until a token is available."""
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.pop(key, (self._burst, now))
            tokens = min(self._burst, tokens + (now - stamp) * self._rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self._buckets[key] = (tokens, now)
            if len(self._buckets) > MAX_TRACKED_SUBJECTS:
                self._buckets.popitem(last=False)
        return 0 if allowed else max(1, math.ceil((1 - tokens) / self._rate))
