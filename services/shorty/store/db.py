"""The asyncpg pool every service shares within one process, with every wait bounded.

asyncpg waits without limit for a pooled connection unless each ``acquire`` names a
timeout, and ``pool.fetch``/``execute`` name none. ``BoundedPool`` gives every
acquire (and so every ``pool.fetch``, and the release that follows, which asyncpg
bounds by the acquire's timeout) SHORTY_DB_ACQUIRE_TIMEOUT; each query and each new
connection's setup get SHORTY_DB_TIMEOUT (asyncpg's ``command_timeout`` and connect
``timeout``). Past either, the driver raises ``TimeoutError``: one of the
``store.errors.UNAVAILABLE`` failures, which the services answer with 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from shorty.settings import Settings


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg is untyped
    """An asyncpg pool whose ``acquire()`` without a timeout waits ``acquire_timeout``."""

    __slots__ = ("acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def create_pool(settings: Settings, dsn: str) -> asyncpg.Pool:
    """Open the pool: a connection is waited for ``db_acquire_timeout`` seconds at most,
    a query or a new connection's setup ``db_timeout`` seconds."""
    pool = BoundedPool(
        dsn,
        acquire_timeout=settings.db_acquire_timeout,
        min_size=min(settings.db_pool_min, settings.db_pool_max),
        max_size=settings.db_pool_max,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        connect=None,
        setup=None,
        init=None,
        reset=None,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=settings.db_timeout,
        timeout=settings.db_timeout,
    )
    await pool
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
