"""The long-lived clients a service process holds: the PostgreSQL pool and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aredis

from shorty.cache.client import create_redis
from shorty.settings import Settings
from shorty.store.db import create_pool


@dataclass(frozen=True, slots=True)
class Resources:
    pool: asyncpg.Pool
    redis: aredis.Redis


@asynccontextmanager
async def open_resources(
    settings: Settings, *, redis_block_seconds: float = 0
) -> AsyncIterator[Resources]:
    """Open both clients, and close them however the block ends.

    PostgreSQL must answer at start (a service without its source of truth is
    misconfigured); Redis is connected lazily, so a Redis outage only degrades.
    """
    database_url, redis_url = settings.require_servers()
    pool = await create_pool(settings, database_url)
    client = create_redis(settings, redis_url, block_seconds=redis_block_seconds)
    try:
        yield Resources(pool, client)
    finally:
        await client.aclose()
        await pool.close()
