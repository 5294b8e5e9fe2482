"""Following the experiments in force: each service process polls the table about
once a second and hands the answer to its ``Faults``.

The poll has a PostgreSQL connection of its own, opened with asyncpg directly:
not a pooled one, so no experiment reaches it (an outage injected on PostgreSQL
must not stop the poll that would end it) and the PostgreSQL breaker never refuses
it. Every wait is bounded (``wait`` seconds: the connect, each query). When the
poll fails (PostgreSQL really down, the table not yet migrated) the process keeps
what it last knew, and each experiment still ends at its own time
(``Faults.expire``): an experiment ends on time even while PostgreSQL is down,
and even if its author is gone.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from shorty.resilience.faults import Faults
from shorty.store.chaos import active
from shorty.store.errors import UNAVAILABLE

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0
_COMPLAIN_EVERY = 60  # failed polls in a row between two WARNINGs


async def follow(
    database_url: str,
    faults: Faults,
    *,
    wait: float,
    interval: float = POLL_SECONDS,
    polled: asyncio.Event | None = None,
) -> None:
    """Poll until cancelled. ``polled`` is set after the first attempt, answered or
    not (a service waits for it before serving, so it starts with the experiments in
    force)."""
    conn: asyncpg.Connection | None = None
    failures = 0
    try:
        while True:
            try:
                if conn is None:
                    conn = await asyncpg.connect(database_url, timeout=wait)
                experiments, now = await active(conn, wait)
            except (*UNAVAILABLE, asyncpg.PostgresError) as exc:
                if conn is not None:
                    conn.terminate()  # a query cut short leaves it unusable
                    conn = None
                failures += 1
                if failures % _COMPLAIN_EVERY == 1:
                    log.warning(
                        "chaos experiments not polled (%s: %s); the %d known go on until"
                        " each one's end",
                        type(exc).__name__,
                        exc,
                        len(faults.active),
                    )
            else:
                if failures:
                    log.info("chaos experiments polled again after %d failures", failures)
                failures = 0
                faults.update(experiments, now)
            faults.expire()
            if polled is not None:
                polled.set()
            await asyncio.sleep(interval)
    finally:
        if conn is not None:
            conn.terminate()  # no await: this may run on cancellation
