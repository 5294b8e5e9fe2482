"""Skip Redis for a moment after it fails, instead of waiting on it for every request."""

from __future__ import annotations

import logging
import time

from shorty.obs.metrics import REDIS_ERRORS, REDIS_SKIPPED

log = logging.getLogger(__name__)


class RedisGuard:
    def __init__(self, backoff: float) -> None:
        self.backoff = backoff
        self._down_until = 0.0

    def usable(self) -> bool:
        if time.monotonic() < self._down_until:
            REDIS_SKIPPED.inc()
            return False
        return True

    def failed(self, exc: BaseException) -> None:
        REDIS_ERRORS.inc()
        self._down_until = time.monotonic() + self.backoff
        log.warning("redis failed on the redirect path: %s", type(exc).__name__)
