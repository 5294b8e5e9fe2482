"""The limiter the API uses: Redis first; in process when Redis cannot answer.

The fallback neither fails open (no limit at all while Redis is away) nor
closed (refusing everyone): each replica enforces ``1 / replicas`` of every
limit on its own, so the cluster as a whole stays within the limit. Each
fallback decision is counted (``shorty_ratelimit_fallback_total``) and the
switch is logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from redis.exceptions import RedisError

from shorty.core.limits import Limit
from shorty.obs.metrics import RATE_LIMIT_FALLBACK
from shorty.ratelimit.local import TokenBuckets
from shorty.ratelimit.redis import Decision, RedisLimits, Verdict

log = logging.getLogger(__name__)


class Limiter:
    def __init__(self, shared: RedisLimits, *, replicas: int = 1) -> None:
        self._shared = shared
        self._replicas = max(1, replicas)
        self._local: dict[Limit, TokenBuckets] = {}
        self._falling_back = False

    async def check(self, checks: Sequence[tuple[str, Limit]]) -> Decision:
        if not checks:
            return Decision(True, ())
        try:
            decision = await self._shared.check(checks)
        except (RedisError, OSError) as exc:
            if not self._falling_back:
                log.warning("rate limits now enforced in process: Redis %s", type(exc).__name__)
                self._falling_back = True
            RATE_LIMIT_FALLBACK.inc()
            return self._check_locally(checks)
        if self._falling_back:
            log.info("rate limits enforced through Redis again")
            self._falling_back = False
        return decision

    def _check_locally(self, checks: Sequence[tuple[str, Limit]]) -> Decision:
        verdicts = []
        for key, limit in checks:
            buckets = self._local.get(limit)
            if buckets is None:
                share = max(1, limit.count // self._replicas)
                buckets = TokenBuckets(share / limit.period, share)
                self._local[limit] = buckets
            wait = buckets.take(key)
            share = buckets.burst
            verdicts.append(Verdict(Limit(share, limit.period), 0 if wait else 1, wait, wait))
        allowed = all(v.retry_after == 0 for v in verdicts)
        return Decision(allowed, tuple(verdicts))


def headers(decision: Decision) -> dict[str, str]:
    """RateLimit-Limit / -Remaining / -Reset (IETF draft), plus Retry-After when refused."""
    tightest = decision.tightest
    if tightest is None:
        return {}
    out = {
        "RateLimit-Limit": str(tightest.limit.count),
        "RateLimit-Remaining": str(max(0, tightest.remaining)),
        "RateLimit-Reset": str(math.ceil(tightest.reset)),
    }
    if not decision.allowed:
        out["Retry-After"] = str(max(1, math.ceil(decision.retry_after)))
    return out
