"""A service's Prometheus metrics on a listener of their own, never on its public port.

Prometheus scrapes ``--metrics-host:--metrics-port`` (any path answers with the
exposition); the public ports answer ``/metrics`` with 404 like any unknown path.
Given a ``liveness`` verdict (``shorty.web.liveness.LoopWatchdog.answer``), the
listener also answers ``/livez`` with it. It runs in threads of its own, so it
answers while the service's event loop is stuck — which is when ``/livez``
matters.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import disable_created_metrics, make_wsgi_app

# No ``*_created`` series: in the text format Prometheus scrapes they are one more
# gauge series per counter and histogram child, which nothing reads.
disable_created_metrics()  # type: ignore[no-untyped-call]
Liveness = Callable[[], tuple[int, bytes]]
_REASONS = {200: "200 OK", 503: "503 Service Unavailable"}


class MetricsPortBusy(RuntimeError):
    """The listener could not bind; the message names what to change."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not logged (stderr would fill with them)."""


def listener_app(liveness: Liveness | None) -> Callable[..., Iterable[bytes]]:
    """The WSGI app of the listener: ``/livez`` from ``liveness``, else the metrics."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if liveness is not None and environ.get("PATH_INFO") == "/livez":
            status, body = liveness()
            headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
            start_response(_REASONS.get(status, f"{status} Status"), headers)
            return [body]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


@contextmanager
def metrics_listener(
    host: str,
    port: int,
    *,
    liveness: Liveness | None = None,
    hint: str = "choose another port with --metrics-port or SHORTY_METRICS_PORT (0: none)",
) -> Iterator[None]:
    """Serve every metric of this process on ``host:port`` (in a thread) until the
    block ends, and ``/livez`` from ``liveness`` if given; nothing when ``port`` is 0.
    A port that cannot be bound is MetricsPortBusy, its message ending with ``hint``."""
    if not port:
        yield
        return

    class Server(_Server):
        address_family = _family(host, port)

    try:
        server = make_server(host, port, listener_app(liveness), Server, handler_class=_Quiet)
    except OSError as exc:
        raise MetricsPortBusy(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; {hint}"
        ) from None
    thread = threading.Thread(target=server.serve_forever, name="metrics", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def _family(host: str, port: int) -> socket.AddressFamily:
    """IPv6 for an IPv6 address (``::`` included), else IPv4."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError:
        return socket.AF_INET
    return infos[0][0] if infos else socket.AF_INET
