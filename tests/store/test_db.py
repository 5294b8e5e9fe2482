"""The services' pool (store/db.py): every wait on PostgreSQL has a deadline."""

import asyncio
import time

import pytest

from shorty.settings import Settings
from shorty.store.db import create_pool
from tests.conftest import PUBLIC_URL

ACQUIRE_TIMEOUT = 0.5


def pool_settings(database_url, **values):
    return Settings(
        database_url=database_url,
        redis_url="redis://127.0.0.1:1/0",
        public_url=PUBLIC_URL,
        db_pool_min=1,
        db_pool_max=1,
        **values,
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
