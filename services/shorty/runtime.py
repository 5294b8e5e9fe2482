"""The long-lived clients a service process holds: the PostgreSQL pool and Redis, and
the circuit breaker of each (one per process, shared by every caller)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aredis
from redis.exceptions import RedisError

from shorty.cache.client import create_redis
from shorty.cache.guard import RedisGuard
from shorty.obs.poolmetrics import POOLS
from shorty.resilience.breaker import Breaker
from shorty.resilience.experiments import follow
from shorty.resilience.faults import Faults
from shorty.settings import Settings
from shorty.store.db import create_pool, postgres_breaker

log = logging.getLogger(__name__)
# How long closing each client may take at shutdown before it is dropped.
CLOSE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Resources:
    pool: asyncpg.Pool  # every acquire passes through postgres_breaker (store/db.py)
    redis: aredis.Redis
    postgres_breaker: Breaker
    redis_guard: RedisGuard  # the Redis breaker, which every Redis caller consults
    faults: Faults | None = None  # the experiments applied (SHORTY_CHAOS_ENABLED), else None

    @property
    def breakers(self) -> tuple[Breaker, ...]:
        return (self.postgres_breaker, self.redis_guard)


@asynccontextmanager
async def open_resources(
    settings: Settings, *, redis_block_seconds: float = 0
) -> AsyncIterator[Resources]:
    """Open both clients, and close them however the block ends.

    PostgreSQL must answer at start (a service without its source of truth is
    misconfigured); Redis is connected lazily, so a Redis outage only degrades.
    Closing is bounded: a pool that does not close within CLOSE_SECONDS (a
    connection never given back, a server that stopped answering) is terminated.

    With SHORTY_CHAOS_ENABLED both clients consult one ``Faults``, which a task
    keeps up to date with the experiments in force (``resilience/experiments.py``);
    the process starts serving once the first poll is done (or has failed).
    """
    database_url, redis_url = settings.require_servers()
    breaker = postgres_breaker(settings)
    faults = Faults() if settings.chaos_enabled else None
    pool = await create_pool(settings, database_url, breaker, faults=faults)
    client = create_redis(settings, redis_url, block_seconds=redis_block_seconds, faults=faults)
    guard = RedisGuard(settings.redis_backoff, settings.redis_breaker_threshold)
    poll: asyncio.Task[None] | None = None
    if faults is not None:
        polled = asyncio.Event()
        poll = asyncio.create_task(
            follow(database_url, faults, wait=settings.db_timeout, polled=polled),
            name="chaos experiments",
        )
        # The first poll is bounded by its connect and its query, each db_timeout.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(polled.wait(), settings.db_timeout * 2 + 1)
    try:
        with POOLS.watching(pool):
            yield Resources(pool, client, breaker, guard, faults)
    finally:
        if poll is not None and faults is not None:
            poll.cancel()
            await asyncio.wait({poll}, timeout=CLOSE_SECONDS)
            faults.end_all("the process stops")
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await client.aclose()
        except (RedisError, OSError) as exc:
            log.warning("redis client not closed cleanly: %s", type(exc).__name__)
        try:
            async with asyncio.timeout(CLOSE_SECONDS):
                await pool.close()
        except TimeoutError:
            log.warning("PostgreSQL pool not closed within %g s: terminated", CLOSE_SECONDS)
            pool.terminate()
