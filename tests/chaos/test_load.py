"""The load driver of the fault tests (tests/chaos/load.py): open loop, every answer
kept, and the figures computed as docs/resilience.md defines them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.chaos.load import Answer, Request, SteadyLoad, Stream, figures, recovery, settled
from tests.helpers import free_port

SLOW = 0.5  # seconds the test server takes for /slow


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(SLOW)
        self.send_response(302 if self.path != "/down" else 503)
        if self.path == "/down":
            self.send_header("Retry-After", "5")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_load_keeps_its_rate_while_answers_are_slow(server):
    rate, seconds = 40.0, 1.0
    streams = [
        Stream("slow", server, rate, lambda: Request("GET", "/slow", "s")),
        Stream("down", server, rate, lambda: Request("GET", "/down", "d")),
        Stream("nobody", free_port(), rate, lambda: Request("GET", "/x", "n")),
    ]
    with SteadyLoad(streams) as load:
        time.sleep(seconds)
    answers = load.stop()
    by = {name: [a for a in answers if a.stream == name] for name in ("slow", "down", "nobody")}
    print(
        f"\n{ {name: len(mine) for name, mine in by.items()} } answers in {seconds} s at {rate}/s"
    )
    # Open loop: a client waiting for each 0.5 s answer would have sent about 2.
    assert rate * seconds * 0.7 <= len(by["slow"]) <= rate * seconds + 2
    assert all(a.status == 302 and a.seconds >= SLOW * 0.9 for a in by["slow"])
    assert {(a.status, a.retry_after) for a in by["down"]} == {(503, "5")}
    assert {a.status for a in by["nobody"]} == {"ClientConnectorError"}


def test_a_stream_that_cannot_make_its_next_request_fails_the_load(server):
    codes = iter(["a", "b"])
    streams = [Stream("short", server, 50.0, lambda: Request("GET", f"/{next(codes)}"))]
    load = SteadyLoad(streams)
    with pytest.raises(RuntimeError, match="the load failed"), load:
        time.sleep(0.5)


def answer(started: float, status: int | str, ended: float | None = None) -> Answer:
    return Answer(
        "s", Request("GET", "/c"), started, started + 0.01 if ended is None else ended, status
    )


def ok(a: Answer) -> bool:
    return a.status == 302


def test_recovery_is_from_the_restore_to_the_first_request_after_the_last_failure():
    restored = 10.0
    answers = [answer(9.0, 503), answer(10.1, 503), answer(10.5, 302), answer(11.2, 503)]
    answers += [answer(11.7, 302), answer(12.0, 302)]
    assert recovery(answers, ok, restored) == pytest.approx(1.7)
    assert recovery(answers[:4], ok, restored) is None  # the last one sent failed
    assert recovery([answer(9.0, 503), answer(10.2, 302)], ok, restored) == 0.0
    # Normal once 1 s of requests has succeeded since.
    assert not settled(answers, ok, restored, ["s"], confirm=1.0)
    assert settled([*answers, answer(12.8, 302)], ok, restored, ["s"], confirm=1.0)


def test_the_error_rate_counts_only_requests_within_the_fault():
    fault, restored = 5.0, 8.0
    answers = [
        answer(4.9, 503, ended=5.5),  # sent before the fault
        answer(5.1, 503),
        answer(6.0, 302),
        answer(7.9, 302, ended=8.4),  # answered after the restore
        answer(8.5, 302),
    ]
    result = figures(answers, "s", ok, fault, restored)
    assert (result.requests, result.during, result.failed) == (5, 2, 1)
    assert result.error_rate == 0.5
    assert result.slowest == pytest.approx(0.6)
    assert result.recovery == 0.0
