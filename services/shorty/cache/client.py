"""The Redis client every service shares within one process."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import redis.asyncio as aredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shorty.resilience import deadline
from shorty.resilience.faults import Faults
from shorty.settings import Settings


class _Pool(aredis.BlockingConnectionPool):
    """redis-py's blocking pool; with ``faults``, every connection it hands out (so
    every command and pipeline of the client) first meets the experiment in force
    on Redis, if any (``resilience/faults.py``)."""

    faults: Faults | None = None

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if self.faults is not None:
            await self.faults.before_redis(self.timeout)
        # The arguments as given: redis-py warns when a caller still names a command.
        return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]


def create_redis(
    settings: Settings, url: str, *, block_seconds: float = 0, faults: Faults | None = None
) -> aredis.Redis:
    """A pooled client whose every call gives up after ``redis_timeout`` seconds
    (plus ``block_seconds`` for a client that waits in blocking reads), or sooner
    within a request's budget (``BudgetedRedis``).

    The pool holds at most ``redis_max_connections`` connections. Past that a
    caller waits for one to be given back, for at most ``redis_timeout`` seconds,
    then gets a ``ConnectionError`` (a Redis failure like any other). redis-py's
    default pool raised at once past its 100 connections: a burst of concurrent
    lookups failed and made the whole process skip Redis (issue #14).

    ``faults``: the process's fault injection (SHORTY_CHAOS_ENABLED), else None.

    redis-py retries nothing here, on purpose and said so (``Retry(NoBackoff(), 0)``,
    what a pool built from a URL gets today, while ``Redis()`` without a pool
    retries three times): a retry inside the driver is invisible to the Redis
    breaker and to the request's budget, and a write that timed out may have
    happened (a click batch written twice). Every caller has a fallback instead.
    """
    pool = _Pool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout + block_seconds,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=False,
        retry=Retry(NoBackoff(), 0),
    )
    pool.faults = faults
    return BudgetedRedis.from_pool(pool)


class BudgetedRedis(aredis.Redis):
    """A client whose commands (scripts and pipelines included) issued while serving a
    request end by that request's deadline (and by SHORTY_REDIS_TIMEOUT, the socket's,
    whichever comes first): past it the call raises ``TimeoutError`` (redis-py drops
    the connection of a cancelled call),
    which every caller already counts as a Redis failure and falls back on. With no
    time left it raises ``DeadlineExceeded`` without calling (not counted)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        budget = deadline.current()
        if budget is None:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        async with asyncio.timeout(_limit(budget)):
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _BudgetedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )


class _BudgetedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        budget = deadline.current()
        if budget is None:
            return await super().execute(raise_on_error)
        async with asyncio.timeout(_limit(budget)):
            return await super().execute(raise_on_error)


def _limit(budget: deadline.Budget) -> float | None:
    """Seconds one call may take within ``budget`` (None: no limit, once lifted)."""
    seconds = budget.bounded(math.inf)
    return None if seconds == math.inf else seconds
