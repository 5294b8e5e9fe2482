"""A token bucket per key, in process memory, with a bounded number of keys.

Each key starts with ``burst`` tokens and earns ``rate`` tokens per second;
a request spends one. The least recently seen keys are forgotten first, so
memory stays bounded whatever the number of clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from lru import LRU


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: LRU[str, tuple[float, float]] = LRU(max_keys)  # (tokens, last seen)

    def take(self, key: str) -> float:
        """Spend a token for ``key``: 0.0 if allowed, else seconds until one is earned."""
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate
