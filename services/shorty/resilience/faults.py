"""Fault injection: the experiments this process applies, at the two doors every
PostgreSQL and Redis call goes through.

Each service process (API, redirect service, worker) holds one ``Faults`` when
SHORTY_CHAOS_ENABLED is true (none otherwise: nothing is ever injected). It is
consulted

- by ``store.db.BoundedPool`` before it hands a pooled connection out, so every
  ``async with pool.acquire()`` and ``pool.fetch``/``execute`` (the breaker's
  door too: an injected failure counts against the PostgreSQL breaker exactly as
  a real one does);
- by the Redis client's connection pool (``cache.client``) before it hands a
  connection out, so every Redis command and pipeline of the process: the callers
  behind ``RedisGuard`` and those that are not (the click flusher, the worker's
  consumers, the invalidation subscription when it (re)subscribes).

What it injects looks to the caller like the real fault: ``latency`` waits
before the call (bounded by the caller's own deadline: past it, the same
``TimeoutError`` a slow server gives); ``error`` and ``outage`` raise the
connection failure an unreachable server gives (``ConnectionRefusedError`` for
PostgreSQL, redis-py's ``ConnectionError`` for Redis). So the existing paths react as
to a real fault: 503 + Retry-After, the breakers, serving stale, the fallbacks.

The set of experiments comes from the table, polled about once a second on a
connection of its own that no experiment reaches (``resilience/experiments.py``);
each experiment also ends here at its own time, measured on this process's
monotonic clock, whether or not the poll still answers. ``/readyz`` asks the
real servers (``BYPASS``): an experiment never drains a pod.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shorty.core.chaos import Experiment
from shorty.obs.metrics import CHAOS_ACTIVE, CHAOS_INJECTED

log = logging.getLogger(__name__)

BYPASS: ContextVar[bool] = ContextVar("shorty_faults_bypass", default=False)
"""True in a task whose calls must reach the real servers (the readiness checks)."""


class InjectedPostgresFault(ConnectionRefusedError):
    """PostgreSQL "unreachable", by an experiment (an ``OSError``, as a refused
    connection is: one of ``store.errors.UNAVAILABLE``)."""


class InjectedPostgresTimeout(TimeoutError):
    """A PostgreSQL call past its deadline because of an experiment's latency."""


class InjectedRedisFault(RedisConnectionError):
    """Redis "unreachable", by an experiment."""


class InjectedRedisTimeout(RedisTimeoutError):
    """A Redis call past SHORTY_REDIS_TIMEOUT because of an experiment's latency."""


@dataclass(slots=True)
class _Applied:
    experiment: Experiment
    deadline: float  # on this process's monotonic clock


class Faults:
    """The experiments in force in this process, one per dependency at most."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        chance: Callable[[], float] = random.random,
    ) -> None:
        self._clock = clock
        self._chance = chance
        self._applied: dict[str, _Applied] = {}
        self._ended: set[int] = set()  # ended here: a poll that still lists one is late

    @property
    def active(self) -> list[Experiment]:
        self.expire()
        return [applied.experiment for applied in self._applied.values()]

    def update(self, experiments: list[Experiment], now: datetime) -> None:
        """The poll's answer: ``experiments`` in force at PostgreSQL's ``now``. One
        no longer listed was stopped (or expired); a new one starts here, and ends
        when as much time has passed on this process's clock as it had left."""
        listed = {experiment.id for experiment in experiments}
        for applied in list(self._applied.values()):
            if applied.experiment.id not in listed:
                self._end(applied, "stopped")
        for experiment in experiments:
            current = self._applied.get(experiment.dependency)
            if experiment.id in self._ended or (
                current is not None and current.experiment.id == experiment.id
            ):
                continue
            if current is not None:
                self._end(current, "replaced")
            left = (experiment.expires_at - now).total_seconds()
            self._start(_Applied(experiment, self._clock() + left), left)
        self.expire()

    def expire(self) -> None:
        """End every experiment whose time is up on this process's clock."""
        now = self._clock()
        for applied in list(self._applied.values()):
            if now >= applied.deadline:
                self._end(applied, "expired")

    def end_all(self, why: str) -> None:
        for applied in list(self._applied.values()):
            self._end(applied, why)

    async def before_postgres(self, deadline: float | None) -> None:
        """Before a pooled connection is handed out; ``deadline``: the acquire's
        timeout (seconds)."""
        applied = self._in_force("postgres")
        if applied is not None:
            await self._inject(applied, deadline, InjectedPostgresFault, InjectedPostgresTimeout)

    async def before_redis(self, deadline: float | None) -> None:
        """Before a Redis connection is handed out; ``deadline``: the client's
        SHORTY_REDIS_TIMEOUT (seconds)."""
        applied = self._in_force("redis")
        if applied is not None:
            await self._inject(applied, deadline, InjectedRedisFault, InjectedRedisTimeout)

    def _in_force(self, dependency: str) -> _Applied | None:
        if not self._applied or BYPASS.get():  # the common case: one dict check
            return None
        applied = self._applied.get(dependency)
        if applied is not None and self._clock() >= applied.deadline:
            self._end(applied, "expired")
            return None
        return applied

    async def _inject(
        self,
        applied: _Applied,
        deadline: float | None,
        unreachable: type[Exception],
        timed_out: type[Exception],
    ) -> None:
        experiment = applied.experiment
        dependency, kind = experiment.dependency, experiment.kind
        if kind == "latency":
            CHAOS_INJECTED.labels(dependency, kind).inc()
            delay = (experiment.latency_ms or 0) / 1000
            if deadline is not None and delay >= deadline:
                await asyncio.sleep(deadline)
                raise timed_out(
                    f"{dependency} call past its {deadline:g} s deadline:"
                    f" {delay:g} s of latency injected by chaos experiment #{experiment.id}"
                )
            await asyncio.sleep(delay)
            return
        if kind == "error" and self._chance() >= (experiment.rate or 0.0):
            return
        CHAOS_INJECTED.labels(dependency, kind).inc()
        raise unreachable(f"{dependency} unreachable: chaos experiment #{experiment.id} injects it")

    def _start(self, applied: _Applied, left: float) -> None:
        experiment = applied.experiment
        self._applied[experiment.dependency] = applied
        CHAOS_ACTIVE.labels(experiment.dependency, experiment.kind).set(1)
        log.warning(
            "chaos experiment %s applied in this process for %.1f s more (until %s)",
            experiment.describe(),
            left,
            experiment.expires_at.isoformat(),
            extra=_fields(experiment),
        )

    def _end(self, applied: _Applied, why: str) -> None:
        experiment = applied.experiment
        if self._applied.get(experiment.dependency) is applied:
            del self._applied[experiment.dependency]
        self._ended.add(experiment.id)
        CHAOS_ACTIVE.labels(experiment.dependency, experiment.kind).set(0)
        log.warning(
            "chaos experiment %s ended in this process: %s",
            experiment.describe(),
            why,
            extra=_fields(experiment),
        )


@contextmanager
def bypassed() -> Iterator[None]:
    """Calls made inside (and in tasks started inside) reach the real servers."""
    token = BYPASS.set(True)
    try:
        yield
    finally:
        BYPASS.reset(token)


def _fields(experiment: Experiment) -> dict[str, object]:
    return {
        "shorty.chaos.id": experiment.id,
        "shorty.chaos.dependency": experiment.dependency,
        "shorty.chaos.kind": experiment.kind,
        **{f"shorty.chaos.{name}": value for name, value in experiment.params.items()},
    }
