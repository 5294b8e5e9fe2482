"""Fault-injection experiments: what one is, with no I/O.

An experiment makes one dependency of every service process (``postgres`` or
``redis``) misbehave for a bounded time, in the services' own client layer:

- ``latency``: each call waits ``latency_ms`` more before it goes out;
- ``error``: a share ``rate`` (0-1) of the calls fails as if the dependency were
  unreachable;
- ``outage``: every call fails so.

The admin API starts and stops them (``api/chaos.py``), the table
``chaos_experiments`` holds them (``store/chaos.py``), and each process applies
the ones in force (``resilience/faults.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from shorty.core.errors import DomainError

Dependency = Literal["postgres", "redis"]
Kind = Literal["latency", "error", "outage"]
DEPENDENCIES: Final = ("postgres", "redis")
KINDS: Final = ("latency", "error", "outage")
MIN_SECONDS, MAX_SECONDS = 1, 3600  # an experiment always ends, within the hour
MAX_LATENCY_MS = 60_000


@dataclass(frozen=True, slots=True)
class Experiment:
    id: int
    dependency: Dependency
    kind: Kind
    latency_ms: int | None  # latency only
    rate: float | None  # error only
    started_at: datetime
    expires_at: datetime
    stopped_at: datetime | None
    created_by: int | None  # the admin's user id (None once that user is deleted)

    @property
    def params(self) -> dict[str, float]:
        """What the kind takes: ``latency_ms``, ``rate`` or nothing."""
        if self.kind == "latency" and self.latency_ms is not None:
            return {"latency_ms": self.latency_ms}
        if self.kind == "error" and self.rate is not None:
            return {"rate": self.rate}
        return {}

    def active_at(self, now: datetime) -> bool:
        return self.stopped_at is None and now < self.expires_at

    def describe(self) -> str:
        """One line for the logs: ``#3 redis outage``, ``#4 postgres error rate=0.5``."""
        params = " ".join(f"{name}={value:g}" for name, value in self.params.items())
        return f"#{self.id} {self.dependency} {self.kind}" + (f" {params}" if params else "")


class ExperimentRunning(DomainError):
    """An experiment is already in force on this dependency: one at a time each, so
    what a service meets is always one experiment's doing."""

    slug = "experiment-running"

    def __init__(self, running: Experiment) -> None:
        super().__init__(
            f"Experiment {running.describe()} is in force on {running.dependency} until"
            f" {running.expires_at.isoformat()}; stop it first."
        )
        self.running = running
