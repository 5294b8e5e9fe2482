"""uvicorn as Shorty's HTTP services run it, with a stop that is bounded as a whole.

uvicorn bounds the wait for open connections (``timeout_graceful_shutdown``) but
not the application's own shutdown, nor the cancelling of what is left when the
loop closes. Each of Shorty's shutdown steps has its own bound; this is the one
behind them all: ``stop_seconds`` after the first SIGTERM/SIGINT, a process that
still runs logs what every task and thread is doing and exits with status 1,
instead of hanging until Kubernetes kills it without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import sys
import threading
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger(__name__)
# Within the 30 s Kubernetes gives a pod by default after SIGTERM.
STOP_SECONDS = 25.0
OVERRAN_EXIT = 1


class _BoundedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stop_seconds: float) -> None:
        super().__init__(config)
        self._stop_seconds = stop_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadline: threading.Timer | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._deadline is None:
            self._deadline = threading.Timer(self._stop_seconds, self._overran)
            self._deadline.daemon = True
            self._deadline.start()
        super().handle_exit(sig, frame)

    def _overran(self) -> None:
        lines = [f"stop overran {self._stop_seconds:g} s; exiting. Still running:"]
        try:
            tasks = asyncio.all_tasks(self._loop) if self._loop is not None else set()
        except RuntimeError:  # the loop's task set changed while it was read
            tasks = set()
        for task in tasks:
            lines.append(f"{task.get_name()}:")
            lines.extend(_awaiting(task.get_coro()))
        log.error("\n".join(lines))
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(OVERRAN_EXIT)


def _awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first: the frames along its
    chain of awaits (a task's own stack shows only the outermost one)."""
    frames: list[str] = []
    while coro is not None and len(frames) < 40:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            frames.append(f"  {code.co_filename}:{frame.f_lineno} in {code.co_qualname}")
            coro = (
                getattr(coro, "cr_await", None)
                or getattr(coro, "ag_await", None)
                or getattr(coro, "gi_yieldfrom", None)
            )
        else:  # an awaitable wrapping one, as anext() wraps an async generator
            inner = [o for o in gc.get_referents(coro) if hasattr(o, "ag_frame")]
            coro = inner[0] if inner else None
    return frames


def serve(app: Any, *, stop_seconds: float = STOP_SECONDS, **options: Any) -> None:
    """``uvicorn.run(app, **options)`` for an app object, the stop bounded by
    ``stop_seconds``. Exits with uvicorn's start-up failure status when the server
    never started (a lifespan that failed), as ``uvicorn.run`` does."""
    config = uvicorn.Config(app, **options)
    server = _BoundedServer(config, stop_seconds)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
