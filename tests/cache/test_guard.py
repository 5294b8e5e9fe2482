"""The Redis breaker (cache/guard.py) with a real Redis: what opens it, what not."""

import asyncio

import redis.asyncio as aredis
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shorty.cache.guard import REDIS_FAILURES, RedisGuard


def skipped() -> float:
    return REGISTRY.get_sample_value("shorty_redis_skipped_total") or 0.0


async def call(guard: RedisGuard, command) -> str:
    """One guarded call, as every caller makes it: what it ended with."""
    if not guard.usable():
        return "skipped"
    try:
        await command()
    except REDIS_FAILURES as exc:
        guard.failed(exc)
        return type(exc).__name__
    guard.succeeded()
    return "ok"


def test_an_error_redis_answers_with_does_not_open_it(clean):
    async def go():
        client = aredis.Redis.from_url(clean.redis_url)
        guard = RedisGuard(60, threshold=2)
        try:
            await client.set("guard:string", "x")
            for _ in range(5):  # WRONGTYPE: Redis answered
                assert await call(guard, lambda: client.sismember("guard:string", "y")) == (
                    ResponseError.__name__
                )
            assert guard.state == "closed"
        finally:
            await client.aclose()

    asyncio.run(go())


def test_failures_in_a_row_open_it_and_calls_are_skipped(clean):
    async def go():
        away = aredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        up = aredis.Redis.from_url(clean.redis_url)
        guard = RedisGuard(60, threshold=2)
        try:
            refused = RedisConnectionError.__name__
            assert await call(guard, away.ping) == refused
            assert await call(guard, up.ping) == "ok"  # starts the count anew
            assert await call(guard, away.ping) == refused
            assert guard.state == "closed"
            assert await call(guard, away.ping) == refused
            assert guard.state == "open"
            before = skipped()
            assert await call(guard, up.ping) == "skipped"  # not even a Redis that answers
            assert skipped() - before == 1
        finally:
            await away.aclose()
            await up.aclose()

    asyncio.run(go())


def test_a_zero_backoff_never_skips():
    async def go():
        away = aredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
        guard = RedisGuard(0)
        try:
            for _ in range(3):
                assert await call(guard, away.ping) == RedisConnectionError.__name__
            assert guard.state == "closed"
        finally:
            await away.aclose()

    asyncio.run(go())
