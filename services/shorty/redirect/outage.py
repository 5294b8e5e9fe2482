"""A PostgreSQL outage as the redirect's lookups see it (serve stale on error).

A lookup that holds a copy of its link past the copy's freshness asks PostgreSQL
as usual, and serves the stale copy only when PostgreSQL fails (``UNAVAILABLE``).
Once one lookup failed, the others do not each wait for PostgreSQL's deadline
again: for ``recheck`` seconds they serve their stale copy at once, then one
lookup asks again (the others keep serving stale while it waits). The first
answer ends the outage. The outage is logged twice, when it starts and when it
ends, never once per request; stale serves are counted by tier.
"""

from __future__ import annotations

import logging
import time

from shorty.obs.metrics import STALE_SERVED

log = logging.getLogger(__name__)

RECHECK_SECONDS = 1.0

# Bound once, as in resolve.py.
_STALE = {"lru": STALE_SERVED.labels("lru"), "redis": STALE_SERVED.labels("redis")}


class PostgresOutage:
    def __init__(self, stale_ttl: float, db_timeout: float, recheck: float = RECHECK_SECONDS):
        self._stale_ttl = stale_ttl
        self._db_timeout = db_timeout
        self._recheck = recheck
        self._since: float | None = None  # monotonic start; None while PostgreSQL answers
        self._ask_after = 0.0
        self._served = 0

    def should_ask(self) -> bool:
        """Whether a lookup that has a stale copy asks PostgreSQL now: always while it
        answers; during an outage one lookup per ``recheck`` seconds, and none while
        that one waits."""
        if self._since is None:
            return True
        now = time.monotonic()
        if now < self._ask_after:
            return False
        self._ask_after = now + self._db_timeout + self._recheck
        return True

    def failed(self, exc: BaseException) -> None:
        """A lookup found PostgreSQL unavailable."""
        now = time.monotonic()
        self._ask_after = now + self._recheck
        if self._since is None:
            self._since = now
            log.warning(
                "PostgreSQL unavailable (%s): links cached past their freshness keep"
                " redirecting (for at most %g s past it) until it answers",
                type(exc).__name__,
                self._stale_ttl,
            )

    def served(self, tier: str) -> None:
        """A lookup was answered with a stale copy from ``tier`` (lru, redis)."""
        _STALE[tier].inc()
        self._served += 1

    def answered(self) -> None:
        """PostgreSQL answered a lookup: the outage, if any, is over."""
        if self._since is not None:
            log.info(
                "PostgreSQL answers again after %.1f s; %d lookups were served stale meanwhile",
                time.monotonic() - self._since,
                self._served,
            )
            self._since = None
            self._ask_after = 0.0
            self._served = 0
