"""A service's Prometheus metrics on a listener of their own, never on its public port.

Prometheus scrapes ``--metrics-host:--metrics-port`` (any path answers with the
exposition); the public ports answer ``/metrics`` with 404 like any unknown path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import start_http_server


class MetricsPortBusy(RuntimeError):
    """The listener could not bind; the message names what to change."""


@contextmanager
def metrics_listener(
    host: str,
    port: int,
    *,
    hint: str = "choose another port with --metrics-port or SHORTY_METRICS_PORT (0: none)",
) -> Iterator[None]:
    """Serve every metric of this process on ``host:port`` (in a thread) until the
    block ends; nothing when ``port`` is 0. A port that cannot be bound is
    MetricsPortBusy, its message ending with ``hint``."""
    if not port:
        yield
        return
    try:
        server, _ = start_http_server(port, addr=host)
    except OSError as exc:
        raise MetricsPortBusy(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; {hint}"
        ) from None
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
