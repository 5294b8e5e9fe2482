"""The rollup aggregator: stored clicks -> hourly rollups and daily visitors.

The click ingester stores raw rows and counts, and marks each row with the ID
of the transaction that stored it (``clicks.ingest_xact``). The aggregator
keeps a watermark, ``click_rollup_progress.done_before``: every click stored
by a transaction below it is rolled up, none above. A step takes the clicks
of the transactions between the watermark and the oldest transaction still
running anywhere (below that, every transaction has ended, so no click there
can still appear), a span of transaction IDs at a time (adapted so that a
step takes about ``target`` clicks while a backlog drains: doubled after a
step that found few, halved after one that found too many), and in one
transaction with moving the watermark:

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

from dataclasses import dataclass

import asyncpg

from shorty.obs.metrics import CLICKS_ROLLED_UP

TARGET = 50_000  # clicks a step aims to take while a backlog drains
SPAN = 200  # transaction IDs a first step covers; then adapted towards TARGET
MAX_SPAN = 1 << 40

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

_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
_TURN = "SELECT done_before FROM click_rollup_progress FOR UPDATE SKIP LOCKED"
_ROLL_UP = """
WITH batch AS (
    SELECT url_id, occurred_at, referrer_host, visitor_hash, is_bot, browser, os, device,
           country
    FROM clicks WHERE ingest_xact >= $1 AND ingest_xact < $2
),
live AS (
    SELECT id FROM urls WHERE id IN (SELECT url_id FROM batch) ORDER BY id FOR KEY SHARE
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
_WAITING = """
SELECT count(*) FROM clicks
WHERE ingest_xact >= (SELECT done_before FROM click_rollup_progress)
"""


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
        async with self._pool.acquire() as conn:
            horizon = await conn.fetchval(_HORIZON)  # before this one holds an ID itself
            async with conn.transaction():
                await conn.execute(_SETTINGS)
                done = await conn.fetchval(_TURN)
                if done is None or done >= horizon:
                    return Step(0, False)
                upto = min(horizon, done + self._span)
                rolled = int(await conn.fetchval(_ROLL_UP, done, upto))
                await conn.execute("UPDATE click_rollup_progress SET done_before = $1", upto)
        CLICKS_ROLLED_UP.inc(rolled)
        # Other writers (and each step) use transaction IDs too: a fixed span could
        # fall behind them for good.
        if rolled < self._target // 2:
            self._span = min(self._span * 2, MAX_SPAN)
        elif rolled > self._target * 2:
            self._span = max(self._span // 2, 1)
        return Step(rolled, upto < horizon)

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
        return int(await self._pool.fetchval(_WAITING))
