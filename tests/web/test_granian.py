"""granian as `shorty serve --server granian` runs it (shorty.web.granianserver): the
same stop and exit statuses as under uvicorn, proved on a small app in a child
process. Shorty's own services under granian: tests/e2e/test_redirect_process.py
and tests/chaos/test_stop.py."""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.e2e.processes import get
from tests.helpers import free_port

# An app with a slow route, a lifespan that says when it runs, and switches (argv) for
# a start-up or shutdown that fails or hangs; it prints what happens, in order.
APP = textwrap.dedent(
    """
    import asyncio, sys
    from contextlib import asynccontextmanager
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from shorty.web.drain import Drain
    from shorty.web.server import serve

    port, mode = int(sys.argv[1]), sys.argv[2]

    def say(what):
        print(what, flush=True)

    async def ok(request):
        return PlainTextResponse(f"ok {request.client.host} {request.state.token}")

    async def slow(request):
        say("slow request started")
        await asyncio.sleep(1.5)
        say("slow request answered")
        return PlainTextResponse("slow")

    @asynccontextmanager
    async def lifespan(app):
        if mode == "failed-start":
            raise RuntimeError("no database")
        yield {"token": "from-the-lifespan"}
        say("lifespan shutdown")
        if mode == "failed-stop":
            raise RuntimeError("flush failed")
        if mode == "hung-stop":
            await asyncio.Event().wait()

    app = Starlette(routes=[Route("/livez", ok), Route("/slow", slow)], lifespan=lifespan)
    serve(app, server="granian", host="127.0.0.1", port=port, stop_seconds=2.0, drain=Drain(0))
    say("returned")
    """
)


class Child:
    def __init__(self, tmp_path: Path, mode: str = "plain", port: int | None = None) -> None:
        self.port = port or free_port()
        self.out = tmp_path / f"{mode}.log"
        self.sink = self.out.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", APP, str(self.port), mode],
            stdout=self.sink,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.out.read_text()

    def live(self) -> None:
        for _ in range(100):  # bounded: 10 s to start
            with contextlib.suppress(OSError):
                if get(self.port, "/livez", timeout=2)[0] == 200:
                    return
            assert self.process.poll() is None, self.text()
            time.sleep(0.1)
        raise AssertionError(f"never answered /livez:\n{self.text()}")

    def wait(self, seconds: float = 15) -> int:
        try:
            return self.process.wait(seconds)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(5)
            self.sink.close()


def test_a_request_in_flight_is_answered_then_the_lifespan_stops_and_it_exits_0(tmp_path):
    child = Child(tmp_path)
    child.live()
    status, _, body = get(child.port, "/livez")
    assert (status, body) == (200, b"ok 127.0.0.1 from-the-lifespan")  # client, lifespan state
    slow = http.client.HTTPConnection("127.0.0.1", child.port, timeout=10)
    slow.request("GET", "/slow")
    for _ in range(50):
        if "slow request started" in child.text():
            break
        time.sleep(0.05)
    child.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):  # no longer accepting
        socket.create_connection(("127.0.0.1", child.port), timeout=1).close()
    response = slow.getresponse()
    assert (response.status, response.read()) == (200, b"slow")
    slow.close()
    assert child.wait() == 0, child.text()
    lines = child.text().splitlines()
    order = ["slow request answered", "lifespan shutdown", "returned"]
    assert [line for line in lines if line in order] == order, child.text()


def test_a_failed_start_up_exits_3(tmp_path):
    child = Child(tmp_path, "failed-start")
    assert child.wait() == 3, child.text()
    assert "no database" in child.text()


def test_a_failed_shutdown_exits_1(tmp_path):
    child = Child(tmp_path, "failed-stop")
    child.live()
    child.process.send_signal(signal.SIGINT)
    assert child.wait() == 1, child.text()
    assert "flush failed" in child.text()


def test_a_shutdown_that_hangs_is_cut_at_the_stop_bound_exit_1(tmp_path):
    child = Child(tmp_path, "hung-stop")
    child.live()
    child.process.send_signal(signal.SIGTERM)
    assert child.wait() == 1, child.text()
    assert "stop overran 2 s; exiting" in child.text()


def test_a_busy_port_is_refused_though_granian_binds_with_reuseport(tmp_path):
    first = Child(tmp_path, "plain")
    first.live()
    second = Child(tmp_path, "second", port=first.port)
    try:
        assert second.wait() == 3, second.text()
        assert f"cannot serve on 127.0.0.1:{first.port}" in second.text()
    finally:
        first.process.send_signal(signal.SIGTERM)
        assert first.wait() == 0, first.text()
