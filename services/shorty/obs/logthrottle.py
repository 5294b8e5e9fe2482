"""At most one log line a minute from each of OpenTelemetry's loggers.

With the collector down, its exporter warns at every retry and every batch (every 1
to 4 s, in each process, for as long as it is down) and its batch processor at
every span dropped: the lines would bury everything else. The first line passes;
the ones after it within the minute are counted, and the next line that passes
says how many were held back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

INTERVAL = 60.0  # seconds
PREFIX = "opentelemetry."


class Throttle(logging.Filter):
    """A handler's filter: a record from a logger under ``prefix`` passes once per
    ``interval`` seconds per logger; any other record always."""

    def __init__(
        self,
        prefix: str = PREFIX,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.interval = interval
        self.clock = clock
        self._next: dict[str, float] = {}  # logger -> when its next line may pass
        self._held: dict[str, int] = {}  # logger -> lines held back since the last

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        now = self.clock()
        if now < self._next.get(record.name, now):
            self._held[record.name] = self._held.get(record.name, 0) + 1
            return False
        self._next[record.name] = now + self.interval
        held = self._held.pop(record.name, 0)
        if held:
            record.msg = (
                f"{record.getMessage()} (and {held} more from this logger since the last"
                " line, not logged)"
            )
            record.args = None
            record.__dict__["shorty.log.held_back"] = held
        return True
