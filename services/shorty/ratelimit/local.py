"""A token bucket per key, in process memory, with a bounded number of keys.

Each key starts with ``burst`` tokens and earns ``rate`` tokens per second;
a request spends one, or its ``cost``. The least recently seen keys are
forgotten first, so memory stays bounded whatever the number of clients.
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

    def take(self, key: str, cost: int = 1) -> float:
        """Spend ``cost`` tokens for ``key``: 0.0 if allowed, else seconds until they
        are earned (spending nothing). A cost above ``burst`` never fits."""
        now = self._clock()
        tokens = self._tokens(key, now)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    def wait(self, key: str, cost: int = 1) -> float:
        """Seconds until ``key`` holds ``cost`` tokens (0.0: now), spending nothing."""
        return max(0.0, (cost - self._tokens(key, self._clock())) / self.rate)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - last) * self.rate)
