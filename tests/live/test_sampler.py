"""The live figures, read from real Prometheus expositions (prometheus_client's own
HTTP server on a registry of the test's) and from readiness answers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from prometheus_client import Gauge

from shorty.live.figures import parse, quantile
from shorty.live.sampler import LiveSampler
from shorty.settings import LiveTarget
from tests.helpers import free_port
from tests.live.helpers import Service


class Ready(BaseHTTPRequestHandler):
    """A /readyz as the services answer it (503 with a body when not ready)."""

    answer: ClassVar[dict[str, object]] = {}

    def do_GET(self) -> None:
        body = json.dumps(self.answer).encode()
        self.send_response(200 if self.answer.get("status") == "ready" else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def service() -> Iterator[Service]:
    made = Service()
    yield made
    made.close()


@pytest.fixture
def readiness() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/readyz"
    server.shutdown()
    server.server_close()
    thread.join()


def read_twice(targets: list[LiveTarget], between) -> dict:
    async def go() -> dict:
        sampler = LiveSampler(targets)
        try:
            first = await sampler.snapshot()
            assert all(s["requests_per_second"] is None for s in first["services"])
            between()
            await asyncio.sleep(0.6)  # past FRESH: a new read
            return await sampler.snapshot()
        finally:
            await sampler.close()

    return asyncio.run(go())


def test_rates_p99_cache_hits_and_clicks_between_two_reads(service, readiness):
    Ready.answer = {
        "status": "ready",
        "checks": {"postgres": "up", "redis": "down"},
        "breakers": {"postgres": "closed", "redis": "open"},
    }
    service.breaker.labels("postgres").set(0)
    service.breaker.labels("redis").set(1)

    def traffic() -> None:
        for _ in range(5):  # the sampler's own reads of /readyz, 503 while not ready
            service.seconds.labels("redirect", "/readyz", "GET", "503").observe(0.001)
        for _ in range(98):
            service.seconds.labels("redirect", "/{code}", "GET", "302").observe(0.002)
        for _ in range(2):
            service.seconds.labels("redirect", "/{code}", "GET", "503").observe(0.4)
        service.lookups.labels("lru", "hit").inc(90)
        service.lookups.labels("postgres", "hit").inc(10)
        service.flushed.inc(50)
        service.chaos.labels("redis", "outage").set(1)

    started = time.monotonic()
    snapshot = read_twice(
        [LiveTarget(name="redirect", metrics=service.url, health=readiness)], traffic
    )
    seconds = time.monotonic() - started
    shown = snapshot["services"][0]
    assert shown["up"] is True
    assert shown["ready"] is True
    assert shown["dependencies"] == {
        "postgres": {"health": "up", "breaker": "closed"},
        "redis": {"health": "down", "breaker": "open"},
    }
    # 100 requests over the time between the reads (at least 0.6 s, at most the test's).
    assert 100 / seconds <= shown["requests_per_second"] <= 100 / 0.6
    assert shown["error_ratio"] == 0.02
    assert shown["cache_hit_ratio"] == 0.9
    assert 50 / seconds <= shown["clicks_per_second"] <= 50 / 0.6
    # The 99th of 100 is one of the two slow ones: inside the (0.1, 0.5] bucket.
    assert 100 < shown["p99_ms"] <= 500
    assert shown["chaos"] == ["redis outage"]


def test_a_target_that_does_not_answer_is_down_with_why(readiness):
    Ready.answer = {"status": "not ready", "checks": {"postgres": "down", "redis": "up"}}
    gone = f"http://127.0.0.1:{free_port()}/metrics"

    async def go() -> dict:
        sampler = LiveSampler([LiveTarget(name="worker", metrics=gone, health=readiness)])
        try:
            return await sampler.snapshot()
        finally:
            await sampler.close()

    shown = asyncio.run(go())["services"][0]
    assert shown["up"] is False
    assert shown["error"] == "connection refused"
    assert shown["ready"] is False
    assert shown["dependencies"] == {"postgres": {"health": "down"}, "redis": {"health": "up"}}


def test_a_read_is_bounded_by_the_timeout():
    """A target that accepts and never answers costs at most TIMEOUT."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/metrics"

    async def go() -> tuple[dict, float]:
        sampler = LiveSampler([LiveTarget(name="api-stuck", metrics=url)])
        started = time.monotonic()
        try:
            return await sampler.snapshot(), time.monotonic() - started
        finally:
            await sampler.close()

    try:
        snapshot, seconds = asyncio.run(go())
    finally:
        listener.close()
    assert snapshot["services"][0]["error"] == "no answer within 0.8 s"
    assert seconds < 2


def test_quantile_interpolates_within_the_bucket():
    text = (
        "# TYPE h histogram\n"
        'h_bucket{le="0.1"} %d\nh_bucket{le="0.2"} %d\nh_bucket{le="+Inf"} %d\n'
        "h_count %d\nh_sum 0\n"
    )
    before = parse(text % (0, 0, 0, 0), 0.0)
    now = parse(text % (50, 100, 100, 100), 1.0)
    assert quantile(before, now, "h", 0.5) == pytest.approx(0.1)
    assert quantile(before, now, "h", 0.75) == pytest.approx(0.15)
    assert quantile(before, before, "h", 0.99) is None


def test_a_target_says_what_it_is_or_its_name_does():
    assert LiveTarget(name="redirect-2", metrics="http://127.0.0.1:1/metrics").kind == "redirect"
    named = LiveTarget(name="edge", kind="api", metrics="http://127.0.0.1:1/metrics")
    assert named.kind == "api"
    with pytest.raises(ValueError, match="give its kind"):
        LiveTarget(name="edge", metrics="http://127.0.0.1:1/metrics")


def test_worker_figures_are_the_workers_own(service):
    """Every process exports every metric (0 where unused): a worker's card shows its
    dead letters and stream lag, an API's does not show the worker's."""
    lag = Gauge("shorty_stream_lag", "", ["stream", "group"], registry=service.registry)
    lag.labels("shorty:clicks", "ingest").set(7)
    Gauge("shorty_dlq_length", "", registry=service.registry).set(3)

    async def go(kind: str) -> dict:
        sampler = LiveSampler([LiveTarget(name=kind, metrics=service.url)])
        try:
            return (await sampler.snapshot())["services"][0]
        finally:
            await sampler.close()

    worker, api = asyncio.run(go("worker")), asyncio.run(go("api"))
    assert (worker["stream_lag"], worker["dlq"]) == (7, 3)
    assert (api["stream_lag"], api["dlq"]) == (None, None)


def test_a_previous_read_long_ago_gives_no_rates(service, monkeypatch):
    """A view left alone for minutes must not show a minutes-long average as "the
    last second"."""
    monkeypatch.setattr("shorty.live.sampler.STALE", 0.1)
    snapshot = read_twice([LiveTarget(name="redirect", metrics=service.url)], lambda: None)
    assert snapshot["services"][0]["requests_per_second"] is None


def test_a_page_that_is_not_metrics_spoils_only_its_own_card(service):
    class Odd(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = (
                b"# TYPE shorty_http_request_duration_seconds histogram\n"
                b'shorty_http_request_duration_seconds_bucket{le="many"} 1\n'
            )
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Odd)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    odd = f"http://127.0.0.1:{server.server_address[1]}/metrics"
    try:
        snapshot = read_twice(
            [LiveTarget(name="api", metrics=odd), LiveTarget(name="redirect", metrics=service.url)],
            lambda: None,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    odd_card, good_card = snapshot["services"]
    assert odd_card["up"] is False
    assert odd_card["error"].startswith("unreadable metrics")
    assert good_card["up"] is True


def test_a_host_naming_several_addresses_is_read_at_each(service):
    """A headless Service names each pod: one card per address, each read there (the
    readiness URL on the same host too); an address that refuses is its own card."""
    asked = []

    async def pods(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1", "127.0.0.2"]

    target = LiveTarget(
        name="redirect",
        metrics=f"http://redirect-metrics.example:{service.port}/metrics",
        health=f"http://redirect-metrics.example:{free_port()}/readyz",
    )

    async def go() -> dict:
        sampler = LiveSampler([target], resolver=pods)
        try:
            return await sampler.snapshot()
        finally:
            await sampler.close()

    cards = asyncio.run(go())["services"]
    assert asked == [("redirect-metrics.example", service.port)]
    assert [card["name"] for card in cards] == ["redirect 127.0.0.1", "redirect 127.0.0.2"]
    assert cards[0]["up"] is True  # the test's server listens on 127.0.0.1 only
    assert cards[0]["ready"] is False  # nothing serves its readiness port
    assert cards[1]["up"] is False


def test_a_host_that_does_not_resolve_is_a_card_saying_so():
    async def nowhere(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    async def go() -> dict:
        target = LiveTarget(name="worker", metrics="http://gone.example:9102/metrics")
        sampler = LiveSampler([target], resolver=nowhere)
        try:
            return await sampler.snapshot()
        finally:
            await sampler.close()

    (card,) = asyncio.run(go())["services"]
    assert card["up"] is False
    assert card["error"] == "gone.example did not resolve: Name or service not known"
