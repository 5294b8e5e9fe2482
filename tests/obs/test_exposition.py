"""Each service's metrics on a listener of its own, as `shorty serve` runs them: on
exactly the host asked for, never on the public port, and a busy port is one line."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tests.conftest import Stack
from tests.e2e.processes import Samples, Service, get, listening, sample, scrape, service_env
from tests.helpers import free_port, query, wait_for


@contextmanager
def running(kind: str, stack: Stack, folder: Path) -> Iterator[Service]:
    """`shorty serve <kind>` with its metrics on a free port of 127.0.0.1; with
    uvicorn's WEB_CONCURRENCY set, which it must not follow (one process per pod)."""
    env = service_env(stack.database_url, stack.redis_url, WEB_CONCURRENCY="3")
    service = Service(kind, env, folder / f"{kind}.log", metrics_port=free_port())
    try:
        yield service
    finally:
        service.stop()


def test_the_api_serves_its_metrics_only_on_their_own_port(clean, tmp_path):
    with running("api", clean, tmp_path) as api:
        status, headers, _ = get(api.port, "/metrics")
        assert status == 404
        assert headers["content-type"] == "application/problem+json"
        samples = scrape(api.metrics_port)
        # The 404 above, counted by the API and read from its metrics port.
        count = "shorty_http_request_duration_seconds_count"
        assert (
            sample(samples, count, service="api", route="unmatched", method="GET", status="404")
            == 1
        )
        assert listening(api.process.pid, api.metrics_port) == ["127.0.0.1"]
        # One process: the metrics in its memory are all of the pod's (no workers forked).
        assert psutil.Process(api.process.pid).children() == []


def test_the_redirect_serves_its_metrics_only_on_their_own_port(clean, tmp_path):
    query(
        clean.database_url, "INSERT INTO urls (code, target) VALUES ('mlink', 'https://m.example')"
    )
    with running("redirect", clean, tmp_path) as redirect:
        assert get(redirect.port, "/mlink")[0] == 302
        status, headers, _ = get(redirect.port, "/metrics")
        assert status == 404  # an unknown code like any other
        assert headers["content-type"].startswith("text/html")
        samples = scrape(redirect.metrics_port)
        lookups = "shorty_redirect_lookups_total"
        assert sample(samples, lookups, tier="postgres", result="hit") == 1  # /mlink
        assert sample(samples, lookups, tier="postgres", result="absent") == 1  # /metrics
        assert listening(redirect.process.pid, redirect.metrics_port) == ["127.0.0.1"]
        assert psutil.Process(redirect.process.pid).children() == []


def test_the_worker_serves_its_metrics_on_the_host_asked_for(clean, tmp_path):
    with running("worker", clean, tmp_path) as worker:
        # Before this item the worker bound 0.0.0.0 whatever it was told.
        assert listening(worker.process.pid, worker.metrics_port) == ["127.0.0.1"]
        query(
            clean.database_url,
            "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)"
            """ VALUES ('link', 'm1', 'link.deleted', '{"code": "m1"}')""",
        )

        def published() -> Samples | None:
            samples = scrape(worker.metrics_port)
            return samples if sample(samples, "shorty_outbox_published_total") else None

        samples = wait_for(published, timeout=20, what="the relay to publish the event")
        assert sample(samples, "shorty_outbox_published_total") == 1


def serve(
    kind: str, stack: Stack, *options: str, port: int = 0, **env: str
) -> subprocess.CompletedProcess[str]:
    """`shorty serve <kind>` run to its end; the API and redirects on ``port`` (else a free
    one) of 127.0.0.1."""
    public = [] if kind == "worker" else ["--host", "127.0.0.1", "--port", str(port or free_port())]
    return subprocess.run(
        [sys.executable, "-m", "shorty", "serve", kind, *public, *options],
        env=service_env(stack.database_url, stack.redis_url, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def busy_port() -> Iterator[int]:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        yield busy.getsockname()[1]


def busy_line(port: int) -> str:
    return (
        f"Error: cannot serve metrics on 127.0.0.1:{port}: Address already in use;"
        " choose another port with --metrics-port or SHORTY_METRICS_PORT (0: none)"
    )


@pytest.mark.parametrize("kind", ["api", "redirect", "worker"])
def test_a_busy_metrics_port_stops_the_service_with_one_line(kind, clean):
    with busy_port() as port:
        result = serve(kind, clean, "--metrics-host", "127.0.0.1", "--metrics-port", str(port))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [busy_line(port)]
    assert result.stdout == ""


def test_the_option_comes_before_the_variable(clean):
    with busy_port() as named, busy_port() as given:
        host = ("--metrics-host", "127.0.0.1")
        from_variable = serve("worker", clean, *host, SHORTY_METRICS_PORT=str(named))
        from_option = serve(
            "worker", clean, *host, "--metrics-port", str(given), SHORTY_METRICS_PORT=str(named)
        )
    assert from_variable.stderr.splitlines() == [busy_line(named)]
    assert from_option.stderr.splitlines() == [busy_line(given)]


def test_the_metrics_never_share_the_public_port(clean):
    port = free_port()
    result = serve("api", clean, "--metrics-port", str(port), port=port)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: cannot serve metrics on the public port {port}; choose another port with"
        " --metrics-port or SHORTY_METRICS_PORT (0: none)"
    ]
