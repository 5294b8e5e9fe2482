"""The Redis client every service shares within one process."""

from __future__ import annotations

import redis.asyncio as aredis

from shorty.settings import Settings


def create_redis(settings: Settings, url: str, *, block_seconds: float = 0) -> aredis.Redis:
    """A pooled client whose every call gives up after ``redis_timeout`` seconds
    (plus ``block_seconds`` for a client that waits in blocking reads).

    The pool holds at most ``redis_max_connections`` connections. Past that a
    caller waits for one to be given back, for at most ``redis_timeout`` seconds,
    then gets a ``ConnectionError`` (a Redis failure like any other). redis-py's
    default pool raised at once past its 100 connections: a burst of concurrent
    lookups failed and made the whole process skip Redis (issue #14).
    """
    pool = aredis.BlockingConnectionPool.from_url(
        url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout + block_seconds,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=False,
    )
    return aredis.Redis.from_pool(pool)
