"""The asyncpg pool every service shares within one process, with every wait bounded.

asyncpg waits without limit for a pooled connection unless each ``acquire`` names a
timeout, and ``pool.fetch``/``execute`` name none. ``BoundedPool`` gives every
acquire (and so every ``pool.fetch``, and the release that follows, which asyncpg
bounds by the acquire's timeout) SHORTY_DB_ACQUIRE_TIMEOUT; each query and each new
connection's setup get SHORTY_DB_TIMEOUT (asyncpg's ``command_timeout`` and connect
``timeout``). Past either, the driver raises ``TimeoutError``: one of the
``store.errors.UNAVAILABLE`` failures, which the services answer with 503. The
acquires not yet handed a connection are counted (``waiting``: the gauge
``shorty_db_pool_waiting``, obs/poolmetrics.py).

Every acquire also passes through the process's PostgreSQL circuit breaker
(``shorty.resilience.breaker``): while it is open, ``acquire()`` raises
``BreakerOpen`` (also in ``UNAVAILABLE``) at once instead of waiting for a
deadline, and how each ``async with pool.acquire()`` block ended is reported to
it. Only ``UNAVAILABLE`` failures count against PostgreSQL; an error PostgreSQL
answered with (a constraint, a syntax error) shows that it answers.

Within a request's budget (``shorty.resilience.deadline``), the acquire waits
min(its timeout, the time left), and a connection still held by an ``async with
pool.acquire()`` block at the deadline is closed: its query ends at once (a
cancelled query would instead wait for PostgreSQL to confirm the cancellation, which
a hung server never does) and the block raises ``DeadlineExceeded``, counted by the
breaker as a failure: a call too slow for its budget. With no time left the
acquire raises ``DeadlineExceeded`` without asking: no verdict, not counted.

With fault injection on (SHORTY_CHAOS_ENABLED), an acquire that the breaker lets
through first meets the experiment in force on PostgreSQL, if any
(``resilience/faults.py``): injected latency is waited before the connection is
handed out (a wait as long as the acquire's deadline ends in ``TimeoutError``, as
a pool that long starved would), an injected failure is raised; either is reported
to the breaker like a real one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import asyncpg
from asyncpg.pool import PoolAcquireContext

from shorty.resilience import deadline
from shorty.resilience.breaker import Breaker, BreakerOpen
from shorty.resilience.deadline import Budget, DeadlineExceeded
from shorty.resilience.faults import BYPASS, Faults
from shorty.settings import Settings
from shorty.store.errors import UNAVAILABLE

POSTGRES = "postgres"


class BoundedPool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg is untyped
    """An asyncpg pool whose ``acquire()`` without a timeout waits ``acquire_timeout``,
    and which refuses to wait at all while ``breaker`` is open."""

    __slots__ = ("acquire_timeout", "breaker", "faults", "waiting")

    def __init__(
        self,
        *args: Any,
        acquire_timeout: float,
        breaker: Breaker,
        faults: Faults | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout
        self.breaker = breaker
        self.faults = faults
        self.waiting = 0  # acquires not yet handed a connection (shorty_db_pool_waiting)

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext:
        wait = self.acquire_timeout if timeout is None else timeout
        if self.faults is not None and BYPASS.get():
            # The chaos controls themselves: past the experiment and the breaker, which
            # it opened, so that an experiment on PostgreSQL can always be stopped.
            return PoolAcquireContext(self, wait)
        budget = deadline.current()
        if budget is not None:
            wait = budget.bounded(wait)  # DeadlineExceeded before the breaker is asked
        self.breaker.check()  # BreakerOpen while open (or while its probe is out)
        return _ReportingAcquire(self, wait, self.breaker, budget, self.faults)

    async def _acquire(self, timeout: float | None) -> asyncpg.Connection:  # noqa: ASYNC109 (asyncpg's own signature)
        # Every acquire ends up here (``async with``, ``await``, ``pool.fetch``...).
        self.waiting += 1
        try:
            return await super()._acquire(timeout)
        finally:
            self.waiting -= 1


class _ReportingAcquire(PoolAcquireContext):  # type: ignore[misc]
    """asyncpg's acquire context, telling the breaker how the block ended, closing the
    connection at the request's deadline (and, with fault injection, meeting the
    experiment in force first)."""

    __slots__ = ("breaker", "budget", "closer", "faults", "overran", "started")

    def __init__(
        self,
        pool: BoundedPool,
        timeout: float,
        breaker: Breaker,
        budget: Budget | None,
        faults: Faults | None,
    ) -> None:
        super().__init__(pool, timeout)
        self.breaker = breaker
        self.budget = budget
        self.faults = faults
        self.closer: asyncio.TimerHandle | None = None
        self.overran = False
        self.started = time.monotonic()

    async def __aenter__(self) -> asyncpg.Connection:
        try:
            if self.faults is not None:
                await self.faults.before_postgres(self.timeout)
            conn = await super().__aenter__()
        except BaseException as exc:
            report(self.breaker, self._overran(exc))
            if isinstance(exc, TimeoutError) and self.budget and self.budget.remaining() <= 0:
                raise DeadlineExceeded(self.budget.seconds) from exc  # the budget ended it
            raise
        left = math.inf if self.budget is None else self.budget.remaining()
        if left != math.inf:  # a request's block: closed at its deadline
            self.closer = asyncio.get_running_loop().call_later(max(0.0, left), self._close)
        return conn

    def _overran(self, exc: BaseException) -> BaseException:
        """What to tell the breaker of ``exc``: a cancellation past the request's
        deadline (the backstop, when even the bounded wait did not end in time) is a
        call too slow for its budget, not a caller that went away."""
        if isinstance(exc, asyncio.CancelledError) and self.budget and self.budget.remaining() <= 0:
            return TimeoutError("a wait overran the request's deadline")
        return exc

    def _slow(self, budget: Budget) -> bool:
        return time.monotonic() - self.started > budget.seconds / 2

    def _close(self) -> None:
        self.overran = True
        self.connection.terminate()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.closer is not None:  # within a request's budget
            self.closer.cancel()
            if isinstance(exc, asyncio.CancelledError):
                # A query cancelled by a deadline: closed at once, as at the deadline,
                # rather than waiting for PostgreSQL to confirm the cancellation.
                self.connection.terminate()
        overran = self.overran and isinstance(exc, Exception) and self.budget is not None
        try:
            await super().__aexit__(exc_type, exc, tb)
        except BaseException as release_failure:
            report(self.breaker, self._overran(exc or release_failure))
            raise
        if overran:
            assert self.budget is not None
            # Too slow for its budget: a failure of PostgreSQL's, and the caller's 503.
            report(self.breaker, TimeoutError("a query overran the request's deadline"))
            raise DeadlineExceeded(self.budget.seconds) from exc
        if exc is None and self.budget is not None and self._slow(self.budget):
            # It answered, but took over half of its request's budget: no failure, and
            # no success either, or a slow PostgreSQL whose every request also runs out
            # of time would keep its breaker closed with each success.
            self.breaker.released()
            return
        report(self.breaker, None if exc is None else self._overran(exc))

    def __await__(self) -> Any:
        return self._acquire().__await__()

    async def _acquire(self) -> asyncpg.Connection:
        # ``conn = await pool.acquire()``: only the acquire is seen, not the queries.
        self.done = True  # type: ignore[misc]  # a slot of asyncpg's class
        try:
            if self.faults is not None:
                await self.faults.before_postgres(self.timeout)
            conn = await self.pool._acquire(self.timeout)
        except BaseException as exc:
            report(self.breaker, exc)
            raise
        self.breaker.released()
        return conn


def report(breaker: Breaker, exc: BaseException | None) -> None:
    """Tell ``breaker`` how a PostgreSQL call ended: ``exc`` None, or what it raised."""
    if exc is None:
        breaker.succeeded()
    elif isinstance(exc, BreakerOpen | DeadlineExceeded):
        breaker.released()  # refused inside the block, or no time left: no news of it
    elif isinstance(exc, UNAVAILABLE):
        breaker.failed(exc)
    elif isinstance(exc, asyncpg.PostgresError):
        breaker.succeeded()  # PostgreSQL answered, with a refusal
    else:
        breaker.released()  # cancelled, or the caller's own error


def postgres_breaker(settings: Settings) -> Breaker:
    """The process's PostgreSQL breaker (SHORTY_DB_BREAKER_THRESHOLD, _COOLDOWN)."""
    return Breaker(
        POSTGRES, threshold=settings.db_breaker_threshold, cooldown=settings.db_breaker_cooldown
    )


async def create_pool(
    settings: Settings, dsn: str, breaker: Breaker | None = None, *, faults: Faults | None = None
) -> BoundedPool:
    """Open the pool: a connection is waited for ``db_acquire_timeout`` seconds at most,
    a query or a new connection's setup ``db_timeout`` seconds; ``breaker`` (by
    default one from ``settings``) sees every acquire, and so does ``faults`` (fault
    injection, when on)."""
    pool = BoundedPool(
        dsn,
        acquire_timeout=settings.db_acquire_timeout,
        breaker=breaker or postgres_breaker(settings),
        faults=faults,
        min_size=min(settings.db_pool_min, settings.db_pool_max),
        max_size=settings.db_pool_max,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        connect=None,
        setup=None,
        init=None,
        reset=None,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=settings.db_timeout,
        timeout=settings.db_timeout,
    )
    await pool
    return pool


@asynccontextmanager
async def small_pool(url: str) -> AsyncIterator[asyncpg.Pool]:
    """A two-connection pool for a command-line task, closed afterwards."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()
