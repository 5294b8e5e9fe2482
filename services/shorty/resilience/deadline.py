"""Per-request deadlines (budgets): every wait of a request ends by its deadline.

A timeout per call bounds one wait; a request that makes several (a pooled
connection, two queries, a Redis call) could still take their sum. So each HTTP
request of the API and the redirect service carries a ``Budget``: the monotonic
time by which it must be answered (SHORTY_API_DEADLINE, SHORTY_REDIRECT_DEADLINE
after it arrived), kept in a context variable that every wait inside the request
reads:

- a pooled PostgreSQL connection is waited for min(SHORTY_DB_ACQUIRE_TIMEOUT, the
  time left), and a connection still in use at the deadline is closed, which ends
  its query at once (``store/db.py``);
- each Redis command waits min(SHORTY_REDIS_TIMEOUT, the time left)
  (``cache/client.py``);
- a wait that would start with no time left raises ``DeadlineExceeded`` without
  calling anyone: no verdict on the dependency, so no breaker counts it.

``within`` is the backstop: whatever a dependency (or a cleanup after it) does,
the block ends ``GRACE`` after the deadline with ``DeadlineExceeded``, which the
services answer with 503 + Retry-After. The middleware that starts the API's
budget is ``web/deadline.py``; the redirect service starts its own when a lookup
leaves the process LRU (``redirect/resolve.py``).

Without a budget (the worker, the CLI, a probe) nothing changes: each wait keeps
its own timeout.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

GRACE = 0.03
"""Seconds past the deadline at which the backstop cancels what still runs: room for
the inner waits, which end at the deadline itself, to fail cleanly first (and for a
stale copy to be served). The answer then still goes out within 100 ms."""


class DeadlineExceeded(TimeoutError):
    """The request's budget ran out. A ``TimeoutError`` (so one of
    ``store.errors.UNAVAILABLE`` and, being an ``OSError``, one of the failures every
    Redis caller falls back on); raised before a call, it is no news of the
    dependency and the breakers do not count it."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the request's deadline of {seconds:g} s passed")
        self.seconds = seconds


class Budget:
    """When one request must be answered: ``deadline``, on ``time.monotonic()``'s
    clock, ``seconds`` after the budget started."""

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (negative once past; ``inf`` once lifted)."""
        return self.deadline - time.monotonic()

    def bounded(self, own: float) -> float:
        """min(``own``, the time left) for a wait about to start; ``DeadlineExceeded``
        when no time is left."""
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceeded(self.seconds)
        return min(own, left)

    def lift(self) -> None:
        """No deadline any more: the answer has started (a streamed body's later
        pages keep only their own timeouts)."""
        self.deadline = math.inf


_CURRENT: ContextVar[Budget | None] = ContextVar("shorty_budget", default=None)


def current() -> Budget | None:
    """The budget of the request being served, if any."""
    return _CURRENT.get()


def start(seconds: float) -> Budget:
    """Give the request being served (this task and the tasks it starts) a budget of
    ``seconds`` from now."""
    budget = Budget(seconds)
    _CURRENT.set(budget)
    return budget


@asynccontextmanager
async def within(seconds: float) -> AsyncIterator[Budget]:
    """Run the block within the request's budget (one of ``seconds`` started now when
    the request has none yet), and end it ``GRACE`` past the deadline whatever it
    waits on: then ``DeadlineExceeded``. The budget stays with the request after the
    block, so a later block of the same request shares it."""
    budget = _CURRENT.get()
    if budget is None:
        budget = start(seconds)
    backstop = asyncio.timeout_at(_loop_time(budget.deadline + GRACE))
    try:
        async with backstop:
            yield budget
    except TimeoutError as exc:
        if backstop.expired() and not isinstance(exc, DeadlineExceeded):
            raise DeadlineExceeded(budget.seconds) from exc
        raise


def _loop_time(monotonic: float) -> float | None:
    """``monotonic`` on the running loop's clock (asyncio's is ``time.monotonic`` by
    default, but a loop may have its own); None for no deadline."""
    if monotonic == math.inf:
        return None
    return asyncio.get_running_loop().time() + (monotonic - time.monotonic())
