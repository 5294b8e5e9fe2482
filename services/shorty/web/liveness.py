"""Is this process stuck? A heartbeat on the event loop, judged from any thread.

``/livez`` must fail when the process itself can no longer serve — its event loop
blocked (a synchronous call that hangs, a stdout pipe nobody reads, a CPU-bound
loop) — and never because a dependency is down: restarting a process brings no
database back. The loop runs a heartbeat every ``BEAT_SECONDS``; ``lag()`` is how
far behind it is: how late the last beat woke up, or how overdue the next one is
when the loop has not run it. It reads two floats, so any thread can call it —
while the loop is blocked, only another thread can answer at all: the metrics
listener (``shorty.obs.exposition``) answers ``/livez`` from its own thread with
this verdict, and the public ``/livez`` (``shorty.web.health``) gives the same
one from the loop. Past ``SHORTY_LIVENESS_MAX_LAG`` seconds the verdict is 503.
The lag is the gauge ``shorty_event_loop_lag_seconds``, read at scrape time (so
it shows a stuck loop too).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator

from shorty.obs.metrics import LOOP_LAG

log = logging.getLogger(__name__)
BEAT_SECONDS = 0.25


class LoopWatchdog:
    """The heartbeat of one event loop (``watching``) and the verdict on it (``answer``)."""

    def __init__(self, max_lag: float, *, every: float = BEAT_SECONDS) -> None:
        self.max_lag = max_lag
        self.every = every
        self._beat: float | None = None  # monotonic time of the last beat; None: not watching
        self._late = 0.0  # how late the last beat woke up

    def lag(self) -> float:
        """Seconds the loop is behind (0 while nothing is watched). Safe from any thread."""
        beat = self._beat
        if beat is None:
            return 0.0
        overdue = time.monotonic() - beat - self.every
        return max(self._late, overdue, 0.0)

    def answer(self) -> tuple[int, bytes]:
        """The status and JSON body of ``/livez``: 200, or 503 past the bound."""
        lag = self.lag()
        ok = lag <= self.max_lag
        body = {"status": "ok" if ok else "stuck", "loop_lag_seconds": round(lag, 3)}
        if not ok:
            body["max_lag_seconds"] = self.max_lag
        return (200 if ok else 503), json.dumps(body).encode()

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Beat on the running loop for the block; the lag gauge reads this watchdog."""
        self._beat, self._late = time.monotonic(), 0.0
        LOOP_LAG.set_function(self.lag)
        task = asyncio.create_task(self._heartbeat(), name="loop-watchdog")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._beat = None

    async def _heartbeat(self) -> None:
        while True:
            due = time.monotonic() + self.every
            await asyncio.sleep(self.every)
            now = time.monotonic()
            self._late = max(0.0, now - due)
            self._beat = now
            if self._late > self.max_lag:  # one line per stall, once the loop runs again
                log.warning(
                    "the event loop was blocked for %.1f s (SHORTY_LIVENESS_MAX_LAG: %g s)",
                    self._late,
                    self.max_lag,
                )
