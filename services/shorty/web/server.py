"""uvicorn as Shorty's HTTP services run it: a stop bounded as a whole, and exit 0
after a clean one.

uvicorn bounds the wait for open connections (``timeout_graceful_shutdown``) but
not the application's own shutdown, nor the cancelling of what is left when the
loop closes: ``shorty.stopdeadline`` bounds the whole stop (exit 1 with what still
ran). And uvicorn re-raises the SIGTERM it caught once it has stopped, so a clean
drain would end with -15 (143 in Kubernetes, counted as a failure): here a stop
that drained and ran the lifespan's shutdown exits 0; one whose shutdown failed, 1.
Before all that, a SIGTERM waits out the drain delay (``shorty.web.drain``).
``server="granian"`` runs the app under granian instead, with the same stop
(``shorty.web.granianserver``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import FrameType
from typing import Any, get_args

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from shorty.settings import ServerName
from shorty.stopdeadline import STOP_SECONDS, StopDeadline
from shorty.web.drain import Drain

SHUTDOWN_FAILURE = 1
SERVERS = get_args(ServerName)


class _BoundedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stop_seconds: float, drain: Drain) -> None:
        super().__init__(config)
        self.deadline = StopDeadline(stop_seconds)
        self.drain = drain

    async def serve(self, sockets: Any = None) -> None:
        self.deadline.loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.deadline.arm()  # the drain delay counts in the whole stop's bound
        if not self.drain.begin(sig, lambda: self._stop(sig, None)):
            self._stop(sig, frame)

    def _stop(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # A signal uvicorn keeps is raised again once it has stopped: the default
        # action of SIGTERM then ends the process with -15 after a clean stop.
        self._captured_signals.clear()


def serve(
    app: Any,
    *,
    server: ServerName = "uvicorn",
    stop_seconds: float = STOP_SECONDS,
    drain: Drain | None = None,
    **options: Any,
) -> None:
    """``uvicorn.run(app, **options)`` for an app object, the stop bounded by
    ``stop_seconds`` and started, after a SIGTERM, once ``drain``'s delay is over
    (the app's ``/readyz`` answers 503 meanwhile: give the app the same ``Drain``).
    Returns (exit 0) after a clean stop; exits with uvicorn's
    start-up failure status when the server never started (a lifespan that failed),
    as ``uvicorn.run`` does, and with 1 when the lifespan's shutdown failed (uvicorn
    logged why) or the stop overran its bound. With ``server="granian"``, granian
    serves ``options["host"]:options["port"]`` instead (its other settings are
    fixed: ``shorty.web.granianserver``), stopping and exiting the same way."""
    if server == "granian":
        from shorty.web import granianserver

        granianserver.serve(
            app,
            host=options["host"],
            port=options["port"],
            stop_seconds=stop_seconds,
            drain=drain or Drain(),
        )
        return
    if server != "uvicorn":
        raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
    config = uvicorn.Config(app, **options)
    bounded = _BoundedServer(config, stop_seconds, drain or Drain())
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C
        bounded.run()
    if not bounded.started:
        sys.exit(STARTUP_FAILURE)
    lifespan = getattr(bounded, "lifespan", None)
    if lifespan is not None and getattr(lifespan, "shutdown_failed", False):
        sys.exit(SHUTDOWN_FAILURE)
