"""Code -> link, through the tiers: Redis, then PostgreSQL.

A Redis failure or timeout never fails a redirect: the lookup falls through to
PostgreSQL. A link with a click limit is not cached (its count lives in
PostgreSQL).
"""

from __future__ import annotations

import logging

import asyncpg
from redis.exceptions import RedisError

from shorty.cache.links import CachedLink, LinkCache

log = logging.getLogger(__name__)

_SELECT = (
    "SELECT target, redirect_type, expires_at, disabled, max_clicks, click_count"
    " FROM urls WHERE code = $1"
)


class Resolver:
    def __init__(self, pool: asyncpg.Pool, cache: LinkCache) -> None:
        self._pool = pool
        self._cache = cache

    async def resolve(self, code: str) -> CachedLink | None:
        try:
            cached = await self._cache.get(code)
        except RedisError as exc:
            log.debug("redis get failed for %s: %s", code, type(exc).__name__)
            cached = None
        if cached is not None:
            return cached
        row = await self._pool.fetchrow(_SELECT, code)
        if row is None:
            return None
        exhausted = row["max_clicks"] is not None and row["click_count"] >= row["max_clicks"]
        expires = row["expires_at"].timestamp() if row["expires_at"] else None
        link = CachedLink(
            row["target"], row["redirect_type"], expires, row["disabled"] or exhausted
        )
        if row["max_clicks"] is None:
            try:
                await self._cache.put(code, link)
            except RedisError as exc:
                log.debug("redis set failed for %s: %s", code, type(exc).__name__)
        return link
