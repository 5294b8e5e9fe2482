"""The Redis client's pool: a burst of callers waits for a connection instead of failing."""

import asyncio

from shorty.cache.client import create_redis


def test_more_callers_than_connections_wait_for_one_and_all_succeed(settings):
    """Past redis-py's default pool (100 connections) a call raised MaxConnectionsError
    at once, which made the process skip Redis (issue #14, defect 2). Now it waits."""
    callers = settings.redis_max_connections + 40
    settings = settings.model_copy(update={"redis_timeout": 2.0})

    async def go() -> tuple[list[object], int, int]:
        client = create_redis(settings, settings.redis_url.get_secret_value())
        try:
            # Each call holds its connection 0.2 s in the server, so all overlap.
            calls = [client.blpop([f"pool-test:{n}"], timeout=0.2) for n in range(callers)]
            answers = await asyncio.gather(*calls, return_exceptions=True)
            pool = client.connection_pool
            opened = len(pool._available_connections) + len(pool._in_use_connections)
            return answers, opened, pool.max_connections
        finally:
            await client.aclose()

    answers, opened, most = asyncio.run(go())
    failures = [repr(a) for a in answers if isinstance(a, BaseException)]
    assert failures == []
    assert answers == [None] * callers  # each BLPOP timed out in the server: nothing popped
    assert most == settings.redis_max_connections == 100
    assert opened <= most


def test_the_pool_size_is_a_setting(settings):
    small = settings.model_copy(update={"redis_max_connections": 3, "redis_timeout": 2.0})

    async def go() -> tuple[int, int]:
        client = create_redis(small, small.redis_url.get_secret_value())
        try:
            await asyncio.gather(*(client.blpop([f"pool-test:{n}"], 0.1) for n in range(12)))
            pool = client.connection_pool
            return len(pool._available_connections) + len(pool._in_use_connections), (
                pool.max_connections
            )
        finally:
            await client.aclose()

    assert asyncio.run(go()) == (3, 3)
