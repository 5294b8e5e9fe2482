"""What the live tests share: a service's metrics on a registry of the test's own,
served by prometheus_client's own HTTP server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from tests.helpers import free_port

BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)


class Service:
    """What a Shorty process exports, on a registry of the test's own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.seconds = Histogram(
            "shorty_http_request_duration_seconds",
            "",
            ["service", "route", "method", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.lookups = Counter(
            "shorty_redirect_lookups", "", ["tier", "result"], registry=self.registry
        )
        self.flushed = Counter("shorty_clicks_flushed", "", registry=self.registry)
        self.breaker = Gauge("shorty_breaker_state", "", ["dependency"], registry=self.registry)
        self.chaos = Gauge(
            "shorty_chaos_active", "", ["dependency", "kind"], registry=self.registry
        )
        self.port = free_port()
        self.server, self.thread = start_http_server(self.port, "127.0.0.1", self.registry)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
