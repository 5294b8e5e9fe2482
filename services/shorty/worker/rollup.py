"""The rollup aggregator: stored clicks -> hourly rollups and daily visitors.

The click ingester stores raw rows and counts, and marks each row with the ID
of the transaction that stored it (``clicks.ingest_xact``). The aggregator
keeps a watermark, ``click_rollup_progress.done_before``: every click stored
by a transaction below it is rolled up, none above. A step takes the clicks
of the transactions between the watermark and the oldest transaction still
running anywhere (below that, every transaction has ended, so no click there
can still appear), at most a span of transaction IDs at a time, and in one
transaction with moving the watermark. The span adapts so that a step takes
about ``target`` clicks while a backlog drains: doubled after a step that the
span (not the horizon) cut short and that found few, halved after one that
found too many or ran out of time. A step:

- records the day's visitors not seen before (``click_visitors``); a visitor
  counts under the hour and dimension values of their earliest click in the
  step that saw them first;
- adds the clicks and first visits to ``click_rollups``: one row per link, UTC
  hour, dimension value and bot flag (dimension '' holds the totals).

Folding a whole interval's clicks per statement means a rollup row is written
once per step, not once per click. Statistics lag by about
``SHORTY_ROLLUP_INTERVAL``, longer while a backlog drains or while some long
write transaction holds the horizon back. One aggregator works at a time
across worker replicas: the others find the watermark row locked and skip
their turn. The links a step touches are held (``FOR KEY SHARE``) until it
commits, so a deletion waits and its trigger then removes every rollup of the
link; clicks of a link deleted before are gone with it (cascade).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from shorty.obs.metrics import CLICKS_ROLLED_UP

log = logging.getLogger(__name__)

TARGET = 20_000  # clicks a step aims to take while a backlog drains
SPAN = 200  # transaction IDs a first step covers; then adapted towards TARGET
MAX_SPAN = 1 << 40
STEP_TIMEOUT = 60.0  # seconds a step may take (the pool's own limit is for requests)

# A step is bulk work: thousands of clicks joined to thousands of visitors. A plan
# made for a guessed row count (a cached generic plan, or a partition not analysed
# yet) can pick nested loops there and take minutes instead of a second; so plans
# are made for the actual range, without nested loops (the six-row VALUES join
# still gets one), and sorts and hashes stay in memory.
_SETTINGS = """
SET LOCAL plan_cache_mode = force_custom_plan;
SET LOCAL enable_nestloop = off;
SET LOCAL work_mem = '64MB';
"""

_HORIZON = """
SELECT pg_snapshot_xmin(s)::text::bigint AS horizon, pg_snapshot_xmax(s)::text::bigint AS next
FROM pg_current_snapshot() AS s
"""
_TURN = "SELECT done_before FROM click_rollup_progress FOR UPDATE SKIP LOCKED"
_ROLL_UP = """
WITH batch AS (
    SELECT url_id, occurred_at, referrer_host, visitor_hash, is_bot, browser, os, device,
           country
    FROM clicks WHERE ingest_xact >= $1 AND ingest_xact < $2
),
live AS (
    SELECT id FROM urls WHERE id = ANY (ARRAY(SELECT DISTINCT url_id FROM batch))
    ORDER BY id FOR KEY SHARE
),
taken AS (
    SELECT b.*, (b.occurred_at AT TIME ZONE 'UTC')::date AS day
    FROM batch b JOIN live ON live.id = b.url_id
),
seen AS (
    INSERT INTO click_visitors (url_id, day, visitor_hash)
    SELECT DISTINCT url_id, day, visitor_hash FROM taken WHERE visitor_hash IS NOT NULL
    ORDER BY 2, 1, 3
    ON CONFLICT DO NOTHING
    RETURNING url_id, day, visitor_hash
),
marked AS (
    SELECT t.*, s.visitor_hash IS NOT NULL AND row_number() OVER (
        PARTITION BY t.url_id, t.day, t.visitor_hash ORDER BY t.occurred_at) = 1 AS first_visit
    FROM taken t
    LEFT JOIN seen s
        ON s.url_id = t.url_id AND s.day = t.day AND s.visitor_hash = t.visitor_hash
),
rolled AS (
    INSERT INTO click_rollups AS r (url_id, hour, dimension, value, is_bot, clicks, visitors)
    SELECT m.url_id, date_trunc('hour', m.occurred_at, 'UTC'), d.dimension, d.value, m.is_bot,
           count(*), count(*) FILTER (WHERE m.first_visit)
    FROM marked m
    CROSS JOIN LATERAL (VALUES
        ('', ''), ('referrer', coalesce(m.referrer_host, '')),
        ('country', coalesce(m.country, '')), ('browser', coalesce(m.browser, '')),
        ('os', coalesce(m.os, '')), ('device', coalesce(m.device, ''))
    ) AS d (dimension, value)
    GROUP BY 1, 2, 3, 4, 5
    ORDER BY 1, 3, 2, 4, 5
    ON CONFLICT (url_id, dimension, hour, value, is_bot) DO UPDATE
    SET clicks = r.clicks + excluded.clicks, visitors = r.visitors + excluded.visitors
)
SELECT count(*) FROM taken
"""
# The watermark lies beyond the server's next transaction ID: the database was
# restored from a logical dump (or moved by logical replication), and transaction
# IDs start again from low numbers. The clicks' marks mean nothing any more. A
# row this server stored carries its own transaction's ID as its mark (xmin is
# that ID's low 32 bits): it was not rolled up. A restored row was, if its mark
# lies below the old watermark. Rolled-up rows lose their mark; the others are
# marked with this transaction's ID, and the watermark moves to it.
_REBASE = """
UPDATE clicks SET ingest_xact = CASE
    WHEN xmin::text::bigint = ingest_xact % 4294967296 THEN pg_current_xact_id()::text::bigint
    WHEN ingest_xact < $1 THEN NULL
    ELSE pg_current_xact_id()::text::bigint END
WHERE ingest_xact IS NOT NULL;
"""
_REBASED = """
UPDATE click_rollup_progress SET done_before = pg_current_xact_id()::text::bigint
"""
_WAITING = """
SELECT count(*) AS clicks,
       coalesce(extract(epoch FROM clock_timestamp() - min(occurred_at)), 0) AS oldest_age
FROM clicks
WHERE ingest_xact >= (SELECT done_before FROM click_rollup_progress)
"""


@dataclass(frozen=True, slots=True)
class Backlog:
    clicks: int  # stored, not rolled up yet
    oldest_age: float  # seconds since the oldest of them was clicked (0: none)


@dataclass(frozen=True, slots=True)
class Step:
    rolled: int  # clicks added to the rollups
    behind: bool  # more transactions wait beyond this step's span


class Aggregator:
    """Folds stored clicks into the rollups (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool, span: int = SPAN, target: int = TARGET) -> None:
        self._pool = pool
        self._span = span
        self._target = target

    async def step(self) -> Step:
        """Roll up the clicks of the next span of ended transactions (none if another
        worker's aggregator is at it)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_SETTINGS)
            done = await conn.fetchval(_TURN)
            # Read after taking the turn: a watermark another replica moved a moment
            # ago must not look ahead of IDs read before it did (that would "rebase").
            # This transaction holds an ID by now, so the horizon stays below it.
            ids = await conn.fetchrow(_HORIZON)
            horizon = ids["horizon"]
            if done is not None and done > ids["next"]:
                await self._rebase(conn, done)
                return Step(0, True)
            if done is None or done >= horizon:
                return Step(0, False)
            limited = done + self._span < horizon  # the span, not the horizon
            upto = min(horizon, done + self._span)
            try:
                rolled = int(await conn.fetchval(_ROLL_UP, done, upto, timeout=STEP_TIMEOUT))
            except (TimeoutError, asyncpg.QueryCanceledError):
                self._span = max(self._span // 2, 1)  # too much at once: less next time
                raise
            await conn.execute("UPDATE click_rollup_progress SET done_before = $1", upto)
        CLICKS_ROLLED_UP.inc(rolled)
        # Other writers (and each step) use transaction IDs too: a span that never grew
        # could fall behind them for good; one that grew while idle would take a whole
        # backlog at once.
        if limited and rolled < self._target // 2:
            self._span = min(self._span * 2, MAX_SPAN)
        elif rolled > self._target * 2:
            self._span = max(self._span // 2, 1)
        return Step(rolled, upto < horizon)

    async def _rebase(self, conn: asyncpg.Connection, done: int) -> None:
        log.error(
            "the rollup watermark (%d) is ahead of the server's transaction IDs: restored"
            " from a logical dump? Marking the clicks not rolled up yet again",
            done,
        )
        await conn.execute(_REBASE, done, timeout=None)
        await conn.execute(_REBASED)

    async def drain(self) -> int:
        """Roll up every click of the transactions ended so far; return how many."""
        total = 0
        while True:
            step = await self.step()
            total += step.rolled
            if not step.behind:
                return total

    async def waiting(self) -> int:
        """Clicks stored but not rolled up yet."""
        return (await self.backlog()).clicks

    async def backlog(self) -> Backlog:
        """Clicks stored but not rolled up yet, and the age of the oldest (since its
        click): how far behind the statistics are."""
        row = await self._pool.fetchrow(_WAITING)
        return Backlog(int(row["clicks"]), max(float(row["oldest_age"]), 0.0))
