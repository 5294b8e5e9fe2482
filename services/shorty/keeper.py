"""Servers that ``shorty dev`` started but does not run as its children (the embedded
PostgreSQL and Redis), kept running like its services.

A server is kept through two callables: ``alive()``, cheap, asked at each look, and
``start()``, which starts it again on its address (so its clients reconnect by
themselves). One that has died is started again after the backoff of
``processes.Restart``, each restart told in one line; a start that fails counts as
one more crash; too many quick crashes in a row stop the stack (``ServerLost``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shorty.processes import Restart, held_signals


class ServerLost(Exception):
    """A kept server crashed ``Restart.give_up`` times in a row, each soon after its start."""


@dataclass
class _Kept:
    name: str
    alive: Callable[[], bool]
    start: Callable[[], None]
    started: float = field(default_factory=time.monotonic)
    crashes: int = 0  # in a row, each soon after its start
    due: float | None = None  # when to start it again, once it has died


class Keeper:
    """Servers watched together; ``say``: where the line about each restart goes."""

    def __init__(self, restart: Restart, say: Callable[[str], None] | None = None) -> None:
        self._kept: list[_Kept] = []
        self._restart = restart
        self._say = say or (lambda line: None)

    def add(self, name: str, alive: Callable[[], bool], start: Callable[[], None]) -> None:
        """Keep the server ``name``, running now."""
        self._kept.append(_Kept(name, alive, start))

    def check(self) -> None:
        """Note each server that has died, and start again those whose backoff has passed;
        ``ServerLost`` for one that crashed too often too soon."""
        for kept in self._kept:
            now = time.monotonic()
            if kept.due is None and not kept.alive():
                ran = now - kept.started
                self._crashed(kept, f"{kept.name} exited after {ran:.1f}s", ran)
            elif kept.due is not None and now >= kept.due:
                kept.due = None
                failed: Exception | None = None
                # A stop now waits until the server is recorded (the signal's exception
                # comes after the block, not into this ``except``).
                with held_signals():
                    try:
                        kept.start()
                    except Exception as error:  # any failure is one more crash
                        failed = error
                if failed is not None:
                    self._crashed(kept, f"{kept.name} did not start again ({failed})", 0.0)
                else:
                    kept.started = time.monotonic()

    def _crashed(self, kept: _Kept, what: str, ran: float) -> None:
        kept.crashes = self._restart.count(kept.crashes, ran)
        if kept.crashes >= self._restart.give_up:
            raise ServerLost(
                f"{what}: {self._restart.give_up} crashes in a row, each within"
                f" {self._restart.quick:g}s of its start; giving up on it"
            )
        kept.due = time.monotonic() + self._restart.delay(kept.crashes)
        self._say(f"{what}; {self._restart.told(kept.crashes)}")
