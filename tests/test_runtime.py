"""Closing a service's clients is bounded, however the pool is left."""

import asyncio
import logging

import asyncpg
import pytest

from shorty import runtime
from shorty.runtime import open_resources


def test_a_pool_with_a_connection_never_given_back_is_terminated(settings, monkeypatch, caplog):
    monkeypatch.setattr(runtime, "CLOSE_SECONDS", 0.5)
    caplog.set_level(logging.WARNING, logger="shorty.runtime")

    async def go() -> bool:
        async with asyncio.timeout(10):  # without the bound, pool.close() waits for ever
            async with open_resources(settings) as resources:
                leaked = await resources.pool.acquire()
                backend = await leaked.fetchval("SELECT pg_backend_pid()")
        other = await asyncpg.connect(settings.database_url.get_secret_value())
        try:
            for _ in range(50):  # bounded: 5 s for the server to see the socket close
                alive = await other.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", backend
                )
                if not alive:
                    return True
                await asyncio.sleep(0.1)
            return False
        finally:
            await other.close()

    assert asyncio.run(go()), "the connection never given back still holds a backend"
    assert "PostgreSQL pool not closed within 0.5 s: terminated" in caplog.text


def test_a_pool_closes_cleanly_when_everything_is_given_back(settings, caplog):
    caplog.set_level(logging.WARNING, logger="shorty.runtime")

    async def go() -> None:
        async with open_resources(settings) as resources, resources.pool.acquire() as conn:
            assert await conn.fetchval("SELECT 1") == 1
        with pytest.raises(asyncpg.InterfaceError, match="closed"):
            await resources.pool.fetchval("SELECT 1")

    asyncio.run(go())
    assert caplog.text == ""
