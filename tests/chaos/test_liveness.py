"""Liveness (issue #14): ``/livez`` fails when the process's event loop is stuck, and
never because a dependency is down.

The stuck loop is real: a `shorty serve redirect` whose stdout (its access log)
is a pipe nobody reads — a log shipper that stopped — blocks in ``write`` once
the pipe is full, with the whole event loop. Only a thread can answer then: the
metrics listener answers ``/livez`` from the watchdog's measure of the loop."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import sys
import threading

import pytest
from starlette.testclient import TestClient

from tests.chaos.helpers import APPS, settings_for, through
from tests.e2e.processes import get, scrape, service_env
from tests.faults import Proxy
from tests.helpers import free_port, wait_for

MAX_LAG = 1.0


def livez(port: int) -> tuple[int, dict]:
    status, _, body = get(port, "/livez", timeout=5)
    return status, json.loads(body)


def poke(port: int) -> bool:
    """One request that writes an access line; False once the service stops answering."""
    try:
        status, _, _ = get(port, "/x", timeout=0.5)  # malformed: 404 without a lookup
    except (OSError, http.client.HTTPException):
        return False
    return status == 404


def test_livez_fails_while_the_event_loop_is_blocked_and_recovers(clean, tmp_path):
    port, metrics = free_port(), free_port()
    env = service_env(
        clean.database_url,
        clean.redis_url,
        SHORTY_ACCESS_LOG="true",
        SHORTY_LOG_LEVEL="INFO",
        SHORTY_LIVENESS_MAX_LAG=str(MAX_LAG),
    )
    command = [sys.executable, "-m", "shorty", "serve", "redirect", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--metrics-host", "127.0.0.1"]
    command += ["--metrics-port", str(metrics)]
    with (tmp_path / "stderr.log").open("wb") as errors:
        service = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=errors)
    drained: list[bytes] = []
    reader = None
    try:
        wait_for(lambda: _answers(port), 30, "the service to start")
        assert livez(port)[0] == 200
        status, body = livez(metrics)
        assert (status, body["status"]) == (200, "ok"), body

        # Nobody reads its stdout: the access log fills the pipe, then the loop blocks.
        wait_for(lambda: not poke(port), 60, "the event loop to block on its stdout", 0)
        status, body = wait_for(
            lambda: (answer := livez(metrics))[0] == 503 and answer, 15, "/livez to fail"
        )
        assert body["status"] == "stuck"
        assert body["loop_lag_seconds"] > MAX_LAG
        lag = scrape(metrics)[("shorty_event_loop_lag_seconds", frozenset())]
        assert lag > MAX_LAG

        assert service.stdout is not None
        stdout = service.stdout
        reader = threading.Thread(target=lambda: drained.extend(stdout), daemon=True)
        reader.start()  # the log shipper is back
        wait_for(lambda: livez(metrics)[0] == 200, 15, "/livez to pass again")
        assert livez(port)[0] == 200
        assert poke(port)
        wait_for(lambda: b"the event loop was blocked for" in b"".join(drained), 5, "the log")
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(5)
        if reader is not None:
            reader.join(5)
        if service.stdout is not None:
            service.stdout.close()


def _answers(port: int) -> bool:
    try:
        return get(port, "/livez", timeout=1)[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize("kind", sorted(APPS))
def test_livez_stays_200_with_postgres_and_redis_both_down(kind, clean):
    pg_socket = clean.database_url.partition("?host=")[2] + "/.s.PGSQL.5432"
    redis_socket = clean.redis_url.removeprefix("unix://").partition("?")[0]
    with Proxy(pg_socket) as postgres, Proxy(redis_socket) as redis:
        settings = settings_for(
            clean,
            database_url=through(postgres, clean.database_url),
            redis_url=through(redis, clean.redis_url),
        )
        with TestClient(APPS[kind](settings)) as client:
            postgres.cut()
            redis.cut()
            assert client.get("/readyz").status_code == 503
            for _ in range(3):
                response = client.get("/livez")
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "ok"
                assert response.json()["loop_lag_seconds"] < MAX_LAG
