"""``max_clicks``, enforced across replicas with one Redis counter per limited link.

The counter starts from PostgreSQL's ``click_count`` the first time a link is
used (or after the counter expires), then every GET spends one use. A GET
beyond the limit is refused and not recorded. Without Redis the check falls
back to ``click_count``, which may trail by the clicks still in flight.
"""

from __future__ import annotations

import asyncpg
import redis.asyncio as aredis
from redis.exceptions import RedisError

from shorty.cache.guard import RedisGuard
from shorty.cache.links import USES

USES_TTL = 86_400


class ClickLimits:
    def __init__(self, pool: asyncpg.Pool, client: aredis.Redis, guard: RedisGuard) -> None:
        self._pool = pool
        self._redis = client
        self._guard = guard

    async def allow(self, code: str, max_clicks: int, *, spend: bool) -> bool:
        """May this request (a GET spends a use; a HEAD only looks) be redirected?"""
        if self._guard.usable():
            try:
                return await self._allow_redis(code, max_clicks, spend)
            except (RedisError, OSError) as exc:
                self._guard.failed(exc)
        return await self._count(code) < max_clicks

    async def _allow_redis(self, code: str, max_clicks: int, spend: bool) -> bool:
        key = USES.format(code)
        if not spend:
            seen: bytes | None = await self._redis.get(key)  # type: ignore[assignment]
            return (int(seen) if seen is not None else await self._count(code)) < max_clicks
        used: int = await self._redis.incr(key)
        if used == 1:  # a fresh counter: add what PostgreSQL has already counted
            used = await self._redis.incrby(key, await self._count(code))
            await self._redis.expire(key, USES_TTL)
        return used <= max_clicks

    async def _count(self, code: str) -> int:
        count = await self._pool.fetchval("SELECT click_count FROM urls WHERE code = $1", code)
        return int(count or 0)
