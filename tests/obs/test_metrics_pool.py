"""The PostgreSQL pool's gauges (obs/poolmetrics.py), read as a scrape reads them:
connections in use and idle, the pool's maximum, and acquires waiting for one."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from shorty.obs.poolmetrics import POOLS
from shorty.settings import Settings
from shorty.store.db import create_pool
from tests.conftest import PUBLIC_URL


def gauges() -> dict[str, float]:
    def read(name: str, **labels: str) -> float:
        found = REGISTRY.get_sample_value(name, labels)
        assert found is not None, name
        return found

    return {
        "in_use": read("shorty_db_pool_connections", state="in_use"),
        "idle": read("shorty_db_pool_connections", state="idle"),
        "max": read("shorty_db_pool_max_connections"),
        "waiting": read("shorty_db_pool_waiting"),
    }


def test_the_gauges_follow_the_pool_and_count_waiting_acquires(clean):
    settings = Settings(
        database_url=clean.database_url,
        redis_url=clean.redis_url,
        public_url=PUBLIC_URL,
        db_pool_min=1,
        db_pool_max=2,
    )

    async def go() -> None:
        quiet = gauges()
        pool = await create_pool(settings, clean.database_url)
        try:
            with POOLS.watching(pool):
                assert gauges() == {"in_use": 0, "idle": 1, "max": 2, "waiting": 0}
                async with pool.acquire(), pool.acquire():  # both connections taken
                    assert gauges() == {"in_use": 2, "idle": 0, "max": 2, "waiting": 0}
                    queued = [asyncio.create_task(pool.fetchval("SELECT 1")) for _ in range(3)]
                    await asyncio.sleep(0)  # each runs until it waits for a connection
                    assert gauges()["waiting"] == 3
                assert await asyncio.gather(*queued) == [1, 1, 1]
                assert gauges() == {"in_use": 0, "idle": 2, "max": 2, "waiting": 0}
            assert gauges() == quiet  # a pool no longer held is no longer counted
        finally:
            await pool.close()

    asyncio.run(go())
