"""Code -> link, through the tiers: process LRU, then Redis, then PostgreSQL.

Hits and misses are both remembered: a link for ``lru_ttl`` seconds, an
unknown code for ``negative_ttl`` seconds (in the LRU and in Redis), so a
flood of random codes does not reach PostgreSQL. The API's changes reach the
LRU through ``forget`` (driven by Redis pub/sub). After a Redis failure the
path skips Redis for a moment (RedisGuard) instead of waiting on it again.
"""

from __future__ import annotations

import asyncpg
from cachetools import TTLCache
from redis.exceptions import RedisError

from shorty.cache.guard import RedisGuard
from shorty.cache.links import ABSENT, Absent, CachedLink, LinkCache
from shorty.obs.metrics import LOOKUPS

_SELECT = (
    "SELECT id, target, redirect_type, expires_at, disabled, max_clicks, forward_query"
    " FROM urls WHERE code = $1"
)


class Resolver:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: LinkCache,
        guard: RedisGuard,
        *,
        lru_size: int,
        lru_ttl: float,
        negative_ttl: float,
        db_timeout: float,
    ) -> None:
        self._pool = pool
        self._cache = cache
        self._links: TTLCache[str, CachedLink] | None = None
        self._absent: TTLCache[str, bool] | None = None
        if lru_size > 0:
            self._links = TTLCache(maxsize=lru_size, ttl=lru_ttl)
            if negative_ttl > 0:
                self._absent = TTLCache(maxsize=max(1024, lru_size // 4), ttl=negative_ttl)
        self._guard = guard
        self._db_timeout = db_timeout
        # Bumped by every invalidation: a lookup that overlapped one is not remembered.
        self._epoch = 0

    def forget(self, code: str) -> None:
        self._epoch += 1
        if self._links is not None:
            self._links.pop(code, None)
        if self._absent is not None:
            self._absent.pop(code, None)

    def forget_all(self) -> None:
        self._epoch += 1
        if self._links is not None:
            self._links.clear()
        if self._absent is not None:
            self._absent.clear()

    async def resolve(self, code: str) -> CachedLink | None:
        if self._links is not None:
            link = self._links.get(code)
            if link is not None:
                LOOKUPS.labels("lru", "hit").inc()
                return link
            if self._absent is not None and code in self._absent:
                LOOKUPS.labels("lru", "absent").inc()
                return None
        epoch = self._epoch
        cached, generation = await self._from_redis(code)
        if cached is None:
            cached = await self._from_postgres(code)
            if generation is not None:
                await self._to_redis(code, cached, generation)
        if epoch == self._epoch:
            self._remember(code, cached)
        return cached if isinstance(cached, CachedLink) else None

    def _remember(self, code: str, link: CachedLink | Absent) -> None:
        if isinstance(link, CachedLink):
            if self._links is not None:
                self._links[code] = link
        elif self._absent is not None:
            self._absent[code] = True

    async def _from_redis(self, code: str) -> tuple[CachedLink | Absent | None, bytes | None]:
        """What Redis holds and the code's generation (None: Redis was not asked)."""
        if not self._cache.enabled or not self._guard.usable():
            return None, None
        try:
            cached, generation = await self._cache.get(code)
        except (RedisError, OSError) as exc:
            self._guard.failed(exc)
            return None, None
        if cached is not None:
            LOOKUPS.labels("redis", "absent" if cached is ABSENT else "hit").inc()
        return cached, generation

    async def _to_redis(self, code: str, link: CachedLink | Absent, generation: bytes) -> None:
        try:
            await self._cache.put(code, link, generation)
        except (RedisError, OSError) as exc:
            self._guard.failed(exc)

    async def _from_postgres(self, code: str) -> CachedLink | Absent:
        async with self._pool.acquire(timeout=self._db_timeout) as conn:
            row = await conn.fetchrow(_SELECT, code)
        if row is None:
            LOOKUPS.labels("postgres", "absent").inc()
            return ABSENT
        LOOKUPS.labels("postgres", "hit").inc()
        expires = row["expires_at"].timestamp() if row["expires_at"] else None
        return CachedLink(
            row["id"],
            row["target"],
            row["redirect_type"],
            expires,
            row["disabled"],
            row["max_clicks"],
            row["forward_query"],
        )
