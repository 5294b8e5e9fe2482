"""A service's stop (issue #14 defect 5): SIGTERM or SIGINT drains and exits 0, as
Kubernetes counts a clean stop; a stop that overruns its bound exits 1 and shows
what still ran (here: the worker, its PostgreSQL paused behind a proxy); SIGTERM
first waits out the drain delay, readiness 503 and requests served."""

from __future__ import annotations

import json
import os
import signal
import sys
import textwrap
import time

import pytest

from shorty.processes import Child
from tests.e2e.processes import Service, get, service_env
from tests.faults import Proxy
from tests.helpers import free_port

SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


@pytest.mark.parametrize(
    ("kind", "server", "sig"),
    [(kind, "uvicorn", sig) for kind in ("api", "redirect", "worker") for sig in SIGNALS]
    # `shorty serve --server granian`: the same stop (SIGINT takes the same path there)
    + [("api", "granian", "SIGTERM"), ("redirect", "granian", "SIGTERM")],
)
def test_a_service_stopped_by_a_signal_exits_0(clean, tmp_path, kind, server, sig):
    env = service_env(clean.database_url, clean.redis_url, SHORTY_SERVER=server)
    metrics = free_port() if kind == "worker" else 0  # the worker's liveness is its metrics
    service = Service(kind, env, tmp_path / f"{kind}.log", metrics_port=metrics)
    try:
        assert get(service.port or metrics, "/livez")[0] == 200
        code = service.stop(20, SIGNALS[sig])
    finally:
        service.kill()
    assert code == 0, service.tail()


# The worker as `shorty serve worker` runs it, with a 2 s bound on its stop.
WORKER = textwrap.dedent(
    """
    import asyncio
    from shorty.obs.logging import configure_logging
    from shorty.settings import Settings
    from shorty.worker.main import run_worker

    configure_logging("INFO", "worker")
    asyncio.run(run_worker(Settings(), stop_seconds=2.0))
    """
)


def test_a_worker_whose_stop_overruns_exits_1_and_shows_what_still_ran(clean, tmp_path):
    # The embedded server's URL: postgresql://postgres:@/<db>?host=<socket folder>
    address, _, socket_dir = clean.database_url.partition("?host=")
    with Proxy(f"{socket_dir}/.s.PGSQL.5432") as proxy:
        url = address.replace("@/", f"@127.0.0.1:{proxy.port}/", 1)
        env = service_env(url, clean.redis_url, SHORTY_LOG_LEVEL="INFO")
        worker = Child("worker", [sys.executable, "-c", WORKER], env=env, capture=True)
        try:
            worker.wait_ready(lambda: "worker started" in worker.output, 20)
            proxy.pause()  # every PostgreSQL call from now on waits, as for a SIGSTOPped server
            worker.wait_ready(lambda: proxy.connections > 0, 5)
            code = worker.stop(20)
        finally:
            proxy.resume()
            worker.kill()
    assert code == 1, worker.output
    assert "stop overran 2 s; exiting. Still running:" in worker.output


def _signalled(service: Service, sig: int) -> float:
    os.kill(service.pid, sig)
    return time.monotonic()


def _draining(port: int) -> bool:
    status, _, body = get(port, "/readyz", timeout=2)
    return status == 503 and json.loads(body) == {"status": "draining"}


@pytest.mark.parametrize("server", ["uvicorn", "granian"])
def test_sigterm_drains_first_readiness_503_while_requests_are_served(clean, tmp_path, server):
    """The drain delay (SHORTY_DRAIN_DELAY): after SIGTERM, /readyz answers 503
    ``draining`` at once while every other request is still served; the stop begins
    once the delay is over, and ends with exit 0."""
    env = service_env(
        clean.database_url, clean.redis_url, SHORTY_DRAIN_DELAY="3", SHORTY_SERVER=server
    )
    service = Service("redirect", env, tmp_path / "redirect.log")
    try:
        assert get(service.port, "/readyz")[0] == 200
        signalled = _signalled(service, signal.SIGTERM)
        service.wait_ready(lambda: _draining(service.port), 2)
        served = []
        while time.monotonic() - signalled < 2.5:  # within the delay, with margin
            served.append(get(service.port, "/no-such-code", timeout=2)[0])
            time.sleep(0.1)
        code = service.wait(15)
        stopped = time.monotonic() - signalled
    finally:
        service.kill()
    assert code == 0, service.tail()
    assert served
    assert set(served) == {404}, served  # answered, not refused
    assert stopped >= 3, stopped  # not before the delay was over


@pytest.mark.parametrize(
    ("second", "server"),
    [(signal.SIGTERM, "uvicorn"), (signal.SIGINT, "uvicorn"), (signal.SIGTERM, "granian")],
    ids=["second SIGTERM", "then SIGINT", "second SIGTERM under granian"],
)
def test_a_second_signal_cuts_the_drain_short(clean, tmp_path, second, server):
    env = service_env(
        clean.database_url, clean.redis_url, SHORTY_DRAIN_DELAY="10", SHORTY_SERVER=server
    )
    service = Service("api", env, tmp_path / "api.log")
    try:
        _signalled(service, signal.SIGTERM)
        service.wait_ready(lambda: _draining(service.port), 2)
        cut = _signalled(service, second)
        code = service.wait(15)
        stopped = time.monotonic() - cut
    finally:
        service.kill()
    assert code == 0, service.tail()
    assert stopped < 5, stopped  # the 10 s delay was not waited out


def test_sigint_stops_without_the_drain_delay(clean, tmp_path):
    """Ctrl-C at a terminal: nothing routes traffic there to wait for."""
    env = service_env(clean.database_url, clean.redis_url, SHORTY_DRAIN_DELAY="10")
    service = Service("redirect", env, tmp_path / "redirect.log")
    try:
        signalled = _signalled(service, signal.SIGINT)
        code = service.wait(15)
        stopped = time.monotonic() - signalled
    finally:
        service.kill()
    assert code == 0, service.tail()
    assert stopped < 5, stopped
