"""The Redis breaker: skip Redis while it keeps failing, instead of waiting on it for
every call.

Each service process holds one ``RedisGuard`` (built in ``shorty.runtime``) that
every Redis caller in it shares: on the redirect path the link cache tier and the
click limits; in the API the rate limiter, the link cache invalidation and the
login places; in the worker its job loops. It is the process's circuit breaker
for Redis (``shorty.resilience.breaker``): a caller asks ``usable()`` before a
Redis call and reports ``succeeded()`` or ``failed(exc)``. After
SHORTY_REDIS_BREAKER_THRESHOLD failures in a row the breaker opens, and for
SHORTY_REDIS_BACKOFF seconds every caller takes its fallback at once (PostgreSQL,
limits in process, the outbox) instead of each paying the Redis timeout; then one
call probes Redis and its outcome closes or reopens the breaker.
"""

from __future__ import annotations

from redis.exceptions import RedisError, ResponseError

from shorty.obs.metrics import REDIS_ERRORS, REDIS_SKIPPED
from shorty.resilience.breaker import Breaker
from shorty.resilience.deadline import DeadlineExceeded

REDIS = "redis"
REDIS_FAILURES = (RedisError, OSError)
"""What a Redis call raises when Redis is away, slow or refusing (timeouts included)."""


class RedisGuard(Breaker):
    def __init__(self, backoff: float, threshold: int = 1) -> None:
        """``backoff``: seconds Redis is skipped once the breaker opens (0: never
        skipped); ``threshold``: failures in a row that open it."""
        super().__init__(REDIS, threshold=threshold, cooldown=backoff)

    @property
    def backoff(self) -> float:
        return self.cooldown

    def usable(self) -> bool:
        """Whether to call Redis now; False (and counted) while the breaker is open
        or its probe is out. A True must be followed by ``succeeded`` or ``failed``."""
        if self.allow():
            return True
        REDIS_SKIPPED.inc()
        return False

    def failed(self, exc: BaseException) -> None:
        """A Redis call failed (an error or SHORTY_REDIS_TIMEOUT). An error Redis
        answered with (``ResponseError``: a script's error, WRONGTYPE, NOGROUP) is
        counted but shows that Redis answers: it does not count towards opening. A
        call not made because the request's deadline had passed (``DeadlineExceeded``
        before it started) is no news of Redis at all. A call that overran its budget
        is a failure (``cache/client.py``)."""
        if isinstance(exc, DeadlineExceeded):
            self.released()
            return
        REDIS_ERRORS.inc()
        if isinstance(exc, ResponseError):
            self.succeeded()
        else:
            super().failed(exc)
