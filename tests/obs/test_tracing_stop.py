"""A collector that is down or never answers: a stopping service does not wait for it
(the chart gives each pod 25 s to stop, docs/observability.md "An OTLP collector")."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.e2e.processes import Service, get, service_env


@contextmanager
def silent_collector() -> Iterator[tuple[str, socket.socket]]:
    """An endpoint whose connections are queued by the kernel and never answered: the
    exporter's request hangs until its own timeout."""
    listener = socket.socket()
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", listener
    finally:
        listener.close()


def test_a_silent_collector_does_not_hold_up_a_stopping_service(clean, tmp_path):
    with silent_collector() as (endpoint, listener):
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "50"}
        env = service_env(clean.database_url, clean.redis_url, **otel)
        api = Service("api", env, tmp_path / "api.log")
        try:
            assert get(api.port, "/api/v1/urls/abc")[0] == 401  # a request: a span
            # The span's export is under way: its connection waits to be accepted.
            readable, _, _ = select.select([listener], [], [], 10)
            assert readable, "the span was never sent"
            started = time.monotonic()
            code = api.stop(grace=30)
            took = time.monotonic() - started
        finally:
            api.kill()
    assert code == 0
    assert took < 5, f"took {took:.1f} s to stop"
