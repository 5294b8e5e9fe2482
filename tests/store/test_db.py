"""The services' pool (store/db.py): every wait on PostgreSQL has a deadline, and every
acquire passes through the PostgreSQL breaker."""

import asyncio
import contextvars
import time

import asyncpg
import pytest

from shorty.resilience import deadline
from shorty.resilience.breaker import BreakerOpen
from shorty.settings import Settings
from shorty.store.db import create_pool
from shorty.store.errors import UNAVAILABLE
from tests.conftest import PUBLIC_URL

ACQUIRE_TIMEOUT = 0.5


def pool_settings(database_url, **values):
    return Settings(
        database_url=database_url,
        redis_url="redis://127.0.0.1:1/0",
        public_url=PUBLIC_URL,
        **{"db_pool_min": 1, "db_pool_max": 1, **values},
    )


def test_waiting_for_a_pooled_connection_is_bounded(clean):
    """Every connection taken: ``pool.fetchval`` (which acquires without a timeout of
    its own) gives up after SHORTY_DB_ACQUIRE_TIMEOUT instead of waiting for ever."""

    async def go():
        settings = pool_settings(clean.database_url, db_acquire_timeout=ACQUIRE_TIMEOUT)
        pool = await create_pool(settings, clean.database_url)
        try:
            async with pool.acquire():  # the only connection, held
                started = time.monotonic()
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(10):  # the test's own bound, not the pool's
                        await pool.fetchval("SELECT 1")
                waited = time.monotonic() - started
            assert ACQUIRE_TIMEOUT <= waited < ACQUIRE_TIMEOUT + 1.0
            assert await pool.fetchval("SELECT 1") == 1  # given back: usable again
        finally:
            await pool.close()

    asyncio.run(go())


def test_a_query_is_cancelled_after_the_database_timeout(clean):
    async def go():
        pool = await create_pool(
            pool_settings(clean.database_url, db_timeout=0.5), clean.database_url
        )
        try:
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.execute("SELECT pg_sleep(5)")
            assert time.monotonic() - started < 1.5
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await pool.close()

    asyncio.run(go())


def breaker_settings(database_url, **values):
    return pool_settings(database_url, db_timeout=0.3, db_pool_max=2, **values)


def test_only_unavailable_failures_open_the_breaker(clean):
    """An error PostgreSQL answers with (a division by zero, a bug's KeyError in the
    block) never counts; deadlines do, and past the threshold a call is refused at
    once with BreakerOpen, which is one of the UNAVAILABLE failures."""

    async def go():
        settings = breaker_settings(
            clean.database_url, db_breaker_threshold=2, db_breaker_cooldown=60
        )
        pool = await create_pool(settings, clean.database_url)
        try:
            for _ in range(5):
                with pytest.raises(asyncpg.DivisionByZeroError):
                    await pool.fetchval("SELECT 1 / 0")
                with pytest.raises(KeyError):
                    async with pool.acquire():
                        raise KeyError("a bug of the caller")
            assert pool.breaker.state == "closed"
            with pytest.raises(TimeoutError):
                await pool.execute("SELECT pg_sleep(5)")
            assert await pool.fetchval("SELECT 1") == 1  # a success starts the count anew
            for _ in range(2):
                with pytest.raises(TimeoutError):
                    await pool.execute("SELECT pg_sleep(5)")
            assert pool.breaker.state == "open"
            started = time.monotonic()
            with pytest.raises(UNAVAILABLE) as refused:
                await pool.fetchval("SELECT 1")
            assert isinstance(refused.value, BreakerOpen)
            assert time.monotonic() - started < 0.1  # no wait at all
            with pytest.raises(BreakerOpen):
                async with pool.acquire():
                    pass
        finally:
            await pool.close()

    asyncio.run(go())


def test_one_probe_closes_the_breaker_once_postgres_answers(clean):
    async def go():
        settings = breaker_settings(
            clean.database_url, db_breaker_threshold=1, db_breaker_cooldown=0.5
        )
        pool = await create_pool(settings, clean.database_url)
        try:
            with pytest.raises(TimeoutError):
                await pool.execute("SELECT pg_sleep(5)")
            assert pool.breaker.state == "open"
            await asyncio.sleep(pool.breaker.retry_in() + 0.05)
            assert await pool.fetchval("SELECT 1") == 1  # the probe
            assert pool.breaker.state == "closed"
            assert await pool.fetchval("SELECT 2") == 2
            # A failed probe opens it again.
            with pytest.raises(TimeoutError):
                await pool.execute("SELECT pg_sleep(5)")
            await asyncio.sleep(pool.breaker.retry_in() + 0.05)
            probe = asyncio.create_task(pool.execute("SELECT pg_sleep(5)"))
            await asyncio.sleep(0.05)
            assert pool.breaker.state == "half-open"
            with pytest.raises(BreakerOpen):  # while the probe is out, the others wait
                await pool.fetchval("SELECT 1")
            with pytest.raises(TimeoutError):
                await probe
            assert pool.breaker.state == "open"
        finally:
            await pool.close()

    asyncio.run(go())


def test_within_a_budget_a_query_ends_at_the_deadline_and_counts(clean):
    """A request's budget bounds the query too (SHORTY_DB_TIMEOUT is 5 s here): the
    connection is closed at the deadline, the caller gets DeadlineExceeded, the
    breaker counts a failure; a query answered within the budget is a success, and
    one that took over half of it is neither."""

    async def go():
        settings = pool_settings(clean.database_url, db_breaker_threshold=3)
        pool = await create_pool(settings, clean.database_url)
        breaker = pool.breaker
        try:
            deadline.start(0.3)
            started = time.monotonic()
            with pytest.raises(deadline.DeadlineExceeded):
                await pool.fetchval("SELECT pg_sleep(5)")
            ended = time.monotonic() - started
            assert breaker._failures == 1  # too slow for its budget: a failure
            with pytest.raises(deadline.DeadlineExceeded):  # no time left: not asked
                await pool.fetchval("SELECT 1")
            assert breaker._failures == 1
            deadline.start(1.0)
            assert await pool.fetchval("SELECT pg_sleep(0.6)::text") == ""  # slow success
            assert breaker._failures == 1  # neither success nor failure
            assert await pool.fetchval("SELECT 1") == 1  # in time: a success
            assert breaker._failures == 0
            return ended
        finally:
            await pool.close()

    ended = contextvars.Context().run(asyncio.run, go())
    print(f"a 5 s query within a 0.3 s budget ended after {ended * 1000:.0f} ms")
    assert 0.3 <= ended < 0.3 + 0.1
