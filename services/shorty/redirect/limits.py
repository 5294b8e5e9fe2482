"""``max_clicks``, enforced across replicas with one Redis counter per limited link.

The counter starts from PostgreSQL's ``click_count`` the first time a link is
used (or after a day unused, or a Redis restart), then every GET spends one use
atomically (one Lua call; concurrent first uses seed it once). A GET
beyond the limit is refused and not recorded. Without Redis the check falls
back to ``click_count``, which may trail by the clicks still in flight.
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aredis
from redis.exceptions import RedisError

from shorty.cache.guard import RedisGuard
from shorty.cache.links import USES
from shorty.resilience import deadline

USES_TTL = 86_400  # renewed by every use, so a counter in use is not re-seeded
# ARGV[1]: the seed ('' when not known yet). Without a counter and without a seed,
# nil: the caller fetches the seed. Concurrent seeders agree: only the first SET
# lands, and every INCR counts.
_SPEND = """
if redis.call('EXISTS', KEYS[1]) == 0 then
    if ARGV[1] == '' then return nil end
    redis.call('SET', KEYS[1], ARGV[1], 'NX')
end
local used = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return used
"""


class ClickLimits:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: aredis.Redis,
        guard: RedisGuard,
        *,
        deadline: float = 60.0,
    ) -> None:
        self._pool = pool
        self._redis = client
        self._guard = guard
        self._spend = client.register_script(_SPEND)
        # SHORTY_REDIRECT_DEADLINE, as for the lookup; but not the lookup's short cap on
        # each Redis call: without Redis the limit is only approximate (click_count
        # trails), so a busy Redis is worth waiting for, up to SHORTY_REDIS_TIMEOUT.
        self._deadline = deadline

    async def allow(self, code: str, max_clicks: int, *, spend: bool) -> bool:
        """May this request (a GET spends a use; a HEAD only looks) be redirected?
        Within the request's budget (the lookup's, if it had one)."""
        async with deadline.within(self._deadline):
            return await self._allow(code, max_clicks, spend)

    async def _allow(self, code: str, max_clicks: int, spend: bool) -> bool:
        if self._guard.usable():
            try:
                allowed = await self._allow_redis(code, max_clicks, spend)
            except (RedisError, OSError) as exc:
                self._guard.failed(exc)
            else:
                self._guard.succeeded()
                return allowed
        return await self._count(code) < max_clicks

    async def _allow_redis(self, code: str, max_clicks: int, spend: bool) -> bool:
        key = USES.format(code)
        if not spend:
            seen: bytes | None = await self._redis.get(key)  # type: ignore[assignment]
            return (int(seen) if seen is not None else await self._count(code)) < max_clicks
        used = await self._spend(keys=[key], args=["", USES_TTL])
        if used is None:  # no counter yet: seed it from PostgreSQL, once, then spend
            used = await self._spend(keys=[key], args=[await self._count(code), USES_TTL])
        return int(used) <= max_clicks

    async def _count(self, code: str) -> int:
        count = await self._pool.fetchval("SELECT click_count FROM urls WHERE code = $1", code)
        return int(count or 0)
