"""A circuit breaker: stop calling a dependency that keeps failing, and let one call
find out when it is back.

- **closed**: calls go through; ``threshold`` failures in a row open it.
- **open**: calls are refused at once (the caller takes its fallback, or answers 503)
  for ``cooldown`` seconds.
- **half-open**: one call (the probe) goes through; its success closes the breaker,
  its failure opens it again for another ``cooldown``. A probe that ends with
  neither verdict (cancelled) gives its turn back; one that never reports is
  replaced after ``cooldown``.

Each process holds one breaker per dependency (``shorty.runtime``): every
PostgreSQL caller passes through ``store.db.BoundedPool.acquire``, every Redis
caller through ``cache.guard.RedisGuard``. The caller decides what a failure is
(only "the dependency is unavailable", never a bug or a refused constraint) and
reports it: ``allow()`` before the call, then ``succeeded()``, ``failed(exc)`` or
``released()``. All of it is synchronous and cheap: a closed breaker costs an
attribute check per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from shorty.obs.breakermetrics import BREAKER_STATE, BREAKER_TRANSITIONS

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = 0, 1, 2  # also the values of the shorty_breaker_state gauge
STATE_NAMES = ("closed", "open", "half-open")


class BreakerOpen(Exception):
    """Raised instead of calling a dependency whose breaker is open."""

    def __init__(self, dependency: str, retry_in: float) -> None:
        super().__init__(f"{dependency} breaker open: calls refused for {retry_in:.1f} s more")
        self.dependency = dependency
        self.retry_in = retry_in


class Breaker:
    def __init__(
        self,
        dependency: str,
        *,
        threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``threshold``: failures in a row that open the breaker (at least 1);
        ``cooldown``: seconds it stays open before a probe (0: it never opens)."""
        if threshold < 1 or cooldown < 0:
            raise ValueError("threshold must be at least 1 and cooldown not negative")
        self.dependency = dependency
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._state = CLOSED
        self._failures = 0  # in a row, while closed
        self._opened_at = 0.0
        self._probe_since: float | None = None  # when the half-open probe was let through
        self._gauge = BREAKER_STATE.labels(dependency)
        self._gauge.set(CLOSED)

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        return STATE_NAMES[self._state]

    def retry_in(self) -> float:
        """Seconds until an open breaker lets a probe through (0 unless open)."""
        if self._state != OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def allow(self) -> bool:
        """Whether to call the dependency now. True for the probe of a half-open
        breaker: whoever gets it must report how the call ended."""
        if self._state == CLOSED:
            return True
        now = self._clock()
        if self._state == OPEN:
            if now - self._opened_at < self.cooldown:
                return False
            self._move(HALF_OPEN, "cool-down over, one call probes")
        elif self._probe_since is not None and now - self._probe_since < self.cooldown:
            return False  # the probe is still out
        self._probe_since = now
        return True

    def check(self) -> None:
        """``allow()``, raising ``BreakerOpen`` when it says no."""
        if not self.allow():
            raise BreakerOpen(self.dependency, self.retry_in() or self.cooldown)

    def succeeded(self) -> None:
        """The dependency answered."""
        if self._state == CLOSED:
            self._failures = 0
        elif self._state == HALF_OPEN:
            self._move(CLOSED, "the probe succeeded")
        # Open: a call let through before it opened answered; the probe decides.

    def failed(self, exc: BaseException) -> None:
        """The dependency was unavailable for this call (an error or a deadline)."""
        if self._state == CLOSED:
            self._failures += 1
            if self._failures >= self.threshold and self.cooldown > 0:
                calls = f"{self._failures} calls" if self._failures > 1 else "a call"
                self._open(f"{calls} in a row failed, the last with {type(exc).__name__}")
        elif self._state == HALF_OPEN:
            self._open(f"the probe failed: {type(exc).__name__}")

    def released(self) -> None:
        """A call ended with no verdict on the dependency (cancelled, or a bug of
        its caller): a half-open breaker lets another call probe."""
        if self._state == HALF_OPEN:
            self._probe_since = None

    def answered_elsewhere(self, why: str) -> None:
        """The dependency answered a call made outside the breaker (the redirect's
        invalidation subscription, ``why``): close it now instead of refusing calls
        until the cool-down and a probe, as if the probe had succeeded."""
        if self._state == CLOSED:
            self._failures = 0
        else:
            self._move(CLOSED, why)

    def _open(self, why: str) -> None:
        self._opened_at = self._clock()
        self._probe_since = None
        self._move(OPEN, f"{why}; calls refused for {self.cooldown:g} s")

    def _move(self, state: int, why: str) -> None:
        self._state = state
        self._failures = 0
        self._gauge.set(state)
        BREAKER_TRANSITIONS.labels(self.dependency, STATE_NAMES[state]).inc()
        level = logging.WARNING if state == OPEN else logging.INFO
        log.log(level, "%s breaker %s: %s", self.dependency, STATE_NAMES[state], why)
