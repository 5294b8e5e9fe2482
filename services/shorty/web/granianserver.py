"""granian, a Rust HTTP server, as ``shorty serve --server granian`` runs it.

granian parses HTTP and writes responses in Rust threads, so the event loop
runs only the application: the redirect serves about a third more requests per
second than under uvicorn (docs/performance.md). It runs embedded, on this
process's uvloop loop, so that the app object, its metrics listener thread and
everything ``shorty serve`` sets up stay in the one process.

What uvicorn does for ``shorty.web.server``, and how it is kept here:

- the lifespan: granian runs it (its state reaches every request's scope);
  a failed start-up exits with uvicorn's start-up failure status (3), a failed
  shutdown with 1 (granian only logs those: ``_LifespanWatch`` sees them);
- the stop: SIGTERM first waits out the drain delay (``shorty.web.drain``),
  SIGINT or a second signal stops at once; granian then stops accepting, closes
  idle connections, finishes the requests in flight (each is bounded by the
  service's own deadlines: granian sets no bound of its own), then runs the
  lifespan's shutdown (the click buffer's last write); the whole stop is bounded
  by ``shorty.stopdeadline`` as under uvicorn, and a clean one exits 0;
- one server per port: granian binds with SO_REUSEPORT, so a second server on a
  busy port would silently share its traffic; the port is tried without it first.

Not the same: granian always sends ``server: granian``, and it binds before the
lifespan's start-up has run (connections wait in the backlog meanwhile, where
uvicorn refuses them).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from typing import Any

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.errors import FatalError
from granian.server.embed import Server
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE

from shorty.stopdeadline import StopDeadline
from shorty.web.drain import Drain

SHUTDOWN_FAILURE = 1
BACKLOG = 2048  # uvicorn's
# granian's own loggers, into the root logger (Shorty's ECS lines) instead of theirs.
_LOGGING = {
    "loggers": {
        name: {"handlers": [], "propagate": True, "level": "INFO"}
        for name in ("_granian", "granian.access")
    }
}


class _LifespanWatch:
    """The app, as granian calls it, noting whether the lifespan's start-up or shutdown
    failed (granian logs that and goes on). A plain function that returns the app's
    own coroutine for a request: no coroutine of its own per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.startup_failed = False
        self.shutdown_failed = False

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Any:
        if scope["type"] != "lifespan":
            return self.app(scope, receive, send)
        return self.app(scope, receive, self._watching(send))

    def _watching(self, send: Send) -> Send:
        async def sender(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                self.startup_failed = True
            elif message["type"] == "lifespan.shutdown.failed":
                self.shutdown_failed = True
            await send(message)

        return sender


class _NotExperimental(logging.Filter):
    """granian warns at every start that its embedded server is experimental; once,
    here (docs/performance.md), is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "experimental" not in record.getMessage()


def port_taken(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be bound by a server of its own, if it cannot."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc
    return None


def serve(app: ASGIApp, *, host: str, port: int, stop_seconds: float, drain: Drain) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM/SIGINT (``shorty.web.server.serve``
    with granian: the same stop, the same exit statuses)."""
    taken = port_taken(host, port)
    if taken is not None:
        logging.getLogger("shorty.web.server").error(
            "cannot serve on %s:%d: %s", host, port, taken.strerror or taken
        )
        sys.exit(STARTUP_FAILURE)
    watched = _LifespanWatch(app)
    server = Server(
        watched,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,  # what uvicorn speaks; the Ingress talks HTTP/1.1 to pods
        websockets=False,
        backlog=BACKLOG,
        log_dictconfig=_LOGGING,
    )
    logging.getLogger("_granian").addFilter(_NotExperimental())
    deadline = StopDeadline(stop_seconds)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        deadline.loop = loop

        def stop_later() -> None:  # the drain's timer thread
            loop.call_soon_threadsafe(server.stop)

        def on_signal(sig: int) -> None:
            deadline.arm()  # the drain delay counts in the whole stop's bound
            if not drain.begin(sig, stop_later):
                server.stop()  # type: ignore[no-untyped-call]

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig)
        await server.serve()

    try:
        uvloop.run(run())
    except FatalError:  # the lifespan's start-up failed (granian logged why)
        sys.exit(STARTUP_FAILURE)
    if watched.startup_failed:
        sys.exit(STARTUP_FAILURE)
    if watched.shutdown_failed or server.interrupt_children:  # or its worker died (logged)
        sys.exit(SHUTDOWN_FAILURE)
