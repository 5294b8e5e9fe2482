"""The asyncpg pool every service shares within one process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from shorty.settings import Settings


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """Open the pool; every query is cancelled after ``db_timeout`` seconds."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min(settings.db_pool_min, settings.db_pool_max),
        max_size=settings.db_pool_max,
        command_timeout=settings.db_timeout,
        timeout=settings.db_timeout,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def small_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """A two-connection pool for a command-line task, closed afterwards."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()
