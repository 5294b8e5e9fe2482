"""Skip Redis for a moment after it fails, instead of waiting on it for every call.

Each service process holds one ``RedisGuard`` (built in ``shorty.bootstrap``) that
every Redis caller in it shares: on the redirect path the link cache tier and the
click limits; in the API the rate limiter, the link cache invalidation and the
login places. A caller asks ``usable()`` before a Redis call and reports a
failure with ``failed()``; for ``backoff`` seconds after that, every caller takes
its fallback at once (PostgreSQL, limits in process, the outbox) instead of each
paying the Redis timeout.
"""

from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from shorty.obs.metrics import REDIS_ERRORS, REDIS_SKIPPED

log = logging.getLogger(__name__)

REDIS_FAILURES = (RedisError, OSError)
"""What a Redis call raises when Redis is away, slow or refusing (timeouts included)."""


class RedisGuard:
    def __init__(self, backoff: float) -> None:
        """``backoff``: seconds Redis is skipped after a failure (0: never skipped)."""
        self.backoff = backoff
        self._down_until = 0.0

    def usable(self) -> bool:
        """Whether to call Redis now; False (and counted) during the backoff."""
        if time.monotonic() < self._down_until:
            REDIS_SKIPPED.inc()
            return False
        return True

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed: skip Redis for ``backoff`` seconds from now."""
        REDIS_ERRORS.inc()
        self._down_until = time.monotonic() + self.backoff
        log.warning("redis failed, skipped for %g s: %s", self.backoff, type(exc).__name__)
