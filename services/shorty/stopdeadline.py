"""The bound on a service's whole stop: past it, say what still runs and exit 1.

Each of Shorty's shutdown steps has its own bound (the HTTP drain, closing the
pool and Redis, a worker's batch); this is the one behind them all. Armed on the
first SIGTERM/SIGINT, ``StopDeadline`` lets the process stop by itself (and exit
0) for ``seconds``; a process still running then logs what every task and thread
is doing and exits with status 1 (``OVERRAN_EXIT``), instead of hanging until
Kubernetes kills it without a word.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)
# Within the 30 s Kubernetes gives a pod by default after SIGTERM.
STOP_SECONDS = 25.0
OVERRAN_EXIT = 1


class StopDeadline:
    """``arm()`` starts the clock (again: nothing); ``loop``: whose tasks to show."""

    def __init__(self, seconds: float = STOP_SECONDS) -> None:
        self.seconds = seconds
        self.loop: asyncio.AbstractEventLoop | None = None
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.seconds, self._overran)
            self._timer.daemon = True
            self._timer.start()

    def _overran(self) -> None:
        lines = [f"stop overran {self.seconds:g} s; exiting. Still running:"]
        try:
            tasks = asyncio.all_tasks(self.loop) if self.loop is not None else set()
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
