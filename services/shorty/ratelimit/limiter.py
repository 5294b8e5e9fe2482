"""The limiter the API uses: Redis first; in process when Redis cannot answer.

The fallback neither fails open (no limit at all while Redis is away) nor
closed (refusing everyone): each replica enforces ``1 / replicas`` of every
limit on its own, so the cluster as a whole stays within the limit. Each
fallback decision is counted (``shorty_ratelimit_fallback_total``) and the
switch is logged. While the process's ``RedisGuard`` skips Redis (a Redis call
failed moments before, here or elsewhere in the process), the limiter falls
back at once instead of waiting for Redis to time out again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from shorty.cache.guard import REDIS_FAILURES, RedisGuard
from shorty.core.limits import Limit
from shorty.obs.metrics import RATE_LIMIT_FALLBACK
from shorty.ratelimit.local import TokenBuckets
from shorty.ratelimit.redis import Decision, RedisLimits, Verdict

log = logging.getLogger(__name__)


class Limiter:
    def __init__(
        self, shared: RedisLimits, *, replicas: int = 1, guard: RedisGuard | None = None
    ) -> None:
        """``guard``: the process's Redis guard (by default one of its own that never
        skips)."""
        self._shared = shared
        self._guard = guard or RedisGuard(0)
        self._replicas = max(1, replicas)
        self._local: dict[Limit, TokenBuckets] = {}
        self._falling_back = False

    async def check(self, checks: Sequence[tuple[str, Limit]], cost: int = 1) -> Decision:
        """Spend ``cost`` from every (key, limit) if all have room, else nothing."""
        if not checks:
            return Decision(True, ())
        if self._guard.usable():
            try:
                decision = await self._shared.check(checks, cost)
            except REDIS_FAILURES as exc:
                self._guard.failed(exc)
            else:
                self._guard.succeeded()
                if self._falling_back:
                    log.info("rate limits enforced through Redis again")
                    self._falling_back = False
                return decision
        if not self._falling_back:
            log.warning("rate limits now enforced in process: Redis unavailable")
            self._falling_back = True
        RATE_LIMIT_FALLBACK.inc()
        return self._check_locally(checks, cost)

    def _check_locally(self, checks: Sequence[tuple[str, Limit]], cost: int) -> Decision:
        # All or nothing, as in Redis: a request one limit refuses spends from none.
        held = [(self._buckets(limit), key) for key, limit in checks]
        waits = [buckets.wait(key, cost) for buckets, key in held]
        allowed = not any(waits)
        if allowed:
            for buckets, key in held:
                buckets.take(key, cost)
        verdicts = tuple(
            Verdict(Limit(buckets.burst, limit.period), 0 if wait else 1, wait, wait)
            for (buckets, _), (_, limit), wait in zip(held, checks, waits, strict=True)
        )
        return Decision(allowed, verdicts)

    def _buckets(self, limit: Limit) -> TokenBuckets:
        buckets = self._local.get(limit)
        if buckets is None:
            share = max(1, limit.count // self._replicas)
            buckets = TokenBuckets(share / limit.period, share)
            self._local[limit] = buckets
        return buckets


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
