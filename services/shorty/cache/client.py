"""The Redis client every service shares within one process."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aredis

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
    (plus ``block_seconds`` for a client that waits in blocking reads).

    The pool holds at most ``redis_max_connections`` connections. Past that a
    caller waits for one to be given back, for at most ``redis_timeout`` seconds,
    then gets a ``ConnectionError`` (a Redis failure like any other). redis-py's
    default pool raised at once past its 100 connections: a burst of concurrent
    lookups failed and made the whole process skip Redis (issue #14).

    ``faults``: the process's fault injection (SHORTY_CHAOS_ENABLED), else None.
    """
    pool = _Pool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout + block_seconds,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=False,
    )
    pool.faults = faults
    return aredis.Redis.from_pool(pool)
