"""The Redis client every service shares within one process."""

from __future__ import annotations

import redis.asyncio as aredis

from shorty.settings import Settings


def create_redis(settings: Settings, url: str, *, block_seconds: float = 0) -> aredis.Redis:
    """A pooled client whose every call gives up after ``redis_timeout`` seconds
    (plus ``block_seconds`` for a client that waits in blocking reads)."""
    return aredis.Redis.from_url(
        url,
        socket_timeout=settings.redis_timeout + block_seconds,
        socket_connect_timeout=settings.redis_timeout,
        health_check_interval=30,
        decode_responses=False,
    )
