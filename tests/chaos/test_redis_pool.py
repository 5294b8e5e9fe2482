"""The Redis pool under a paused Redis: callers past the pool's connections wait for
one at most SHORTY_REDIS_TIMEOUT, and every call fails within about two timeouts
(the wait, then the call), never hangs (issue #14, defect 2)."""

import asyncio
import time

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shorty.cache.client import create_redis
from tests.chaos.helpers import through

REDIS_TIMEOUT = 0.3
MARGIN = 1.5  # a loaded two-core machine


def test_with_redis_paused_waiting_for_a_connection_is_bounded(settings, clean, redis_proxy):
    paused = settings.model_copy(
        update={"redis_max_connections": 2, "redis_timeout": REDIS_TIMEOUT}
    )
    url = through(redis_proxy, clean.redis_url)

    async def go() -> tuple[list[object], float, int]:
        client = create_redis(paused, url)
        try:
            assert await client.ping()
            redis_proxy.pause()
            started = time.monotonic()
            answers = await asyncio.gather(
                *(client.get(f"k{n}") for n in range(8)), return_exceptions=True
            )
            pool = client.connection_pool
            opened = len(pool._available_connections) + len(pool._in_use_connections)
            return answers, time.monotonic() - started, opened
        finally:
            redis_proxy.resume()
            await client.aclose()

    answers, elapsed, opened = asyncio.run(go())
    kinds = {type(answer) for answer in answers}
    assert kinds <= {RedisConnectionError, RedisTimeoutError}, answers
    # Six callers found both connections taken and gave up waiting for one.
    assert sum("No connection available" in str(a) for a in answers) == 6
    assert opened <= 2
    assert elapsed < 2 * REDIS_TIMEOUT + MARGIN, f"took {elapsed:.2f} s"
