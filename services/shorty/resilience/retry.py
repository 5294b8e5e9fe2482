"""Retries of idempotent work: exponential backoff with full jitter, never past the
request's budget.

A retry is only for work that may safely run twice (a read; a write that carries an
idempotency key) and only after a failure a second try can cure: the connection
broke (``DROPPED``: PostgreSQL restarted, a proxy or the network cut it) and a fresh
one will do. Not after a deadline (the time is spent, and a slow server is made
slower by retries), not after an open breaker (that is its point), not after an
error the server answered with. One retry by default: enough for a connection that
died under a request, and it cannot multiply load in an outage (the breakers take
over after a few failures).

The wait before try n+1 is uniform in [0, min(cap, base * 2^(n-1))] ("full jitter",
which spreads the retries of many requests apart), and a retry whose wait would end
past the request's deadline (``resilience/deadline.py``) is not made: the failure
is raised instead, so the caller answers within its budget.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from shorty.resilience import deadline

T = TypeVar("T")

# The connection broke under the call: a new one (the pool opens it) may well work.
DROPPED: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError, ConnectionFailureError
    asyncpg.InterfaceError,  # the connection is closed / in an unusable state
    ConnectionError,  # reset, refused, broken pipe (OSError subclasses)
)
BASE = 0.01
CAP = 0.1


def full_jitter(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Seconds before try ``attempt + 1``: uniform in [0, min(cap, base * 2^(attempt-1))].

    The doubling stops once it passes ``cap``: the worker counts an outage's failures
    in a row with no limit, and 2^1024 does not fit a float (an ``OverflowError``
    that ended the worker after ~1,024 failures, minutes into a PostgreSQL outage)."""
    step, doublings = base, max(attempt - 1, 0)
    while doublings and step < cap:
        step, doublings = step * 2, doublings - 1
    return float(rand() * min(cap, step))


async def idempotent(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 2,
    retry_on: tuple[type[BaseException], ...] = DROPPED,
    base: float = BASE,
    cap: float = CAP,
    rand: Callable[[], float] = random.random,
) -> T:
    """``await call()``, tried up to ``attempts`` times while it raises one of
    ``retry_on``; only for work that may run twice. The last failure is raised."""
    attempt = 1
    while True:
        try:
            return await call()
        except retry_on:
            if attempt >= attempts:
                raise
            pause = full_jitter(attempt, base, cap, rand)
            budget = deadline.current()
            if budget is not None and budget.remaining() <= pause:
                raise  # no time for another try within the request's deadline
            await asyncio.sleep(pause)
            attempt += 1
