"""Click statistics, read from ``click_rollups`` only: raw clicks may be gone.

A rollup row counts one link's clicks in one UTC hour for one dimension value
and bot flag; dimension ``''`` holds the totals. ``visitors`` counts the
visitors first seen that UTC day in that hour, so its sum over a range is the
sum of each day's distinct visitors (docs/api.md, "Statistics", says what that
means to a reader). Every query reads the primary key (url_id, dimension,
hour, ...) by range; a user's links are found through ``urls_owner_created_idx``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg

Interval = Literal["hour", "day"]
Bots = Literal["include", "exclude", "only"]
STEP: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# The rollups' is_bot values each bots filter keeps.
_BOT_FLAGS = {"include": [False, True], "exclude": [False], "only": [True]}
LINK_DIMENSIONS = ("referrer", "country", "browser", "os", "device")
SUMMARY_DIMENSIONS = ("referrer", "country")

# Which rollups a report reads, as a condition on ``r.url_id`` taking $1. Every
# variant takes $1 so that every query below keeps the same parameters.
_ONE_LINK = "r.url_id = $1"
_OWNER = "r.url_id IN (SELECT id FROM urls WHERE owner_id = $1)"
_EVERY_LINK = "$1::bigint IS NULL"

# $2, $3: the window; $4: the is_bot values kept; $5: 'hour' or 'day'.
_SERIES = """
SELECT date_trunc($5::text, r.hour, 'UTC') AS at,
       coalesce(sum(r.clicks) FILTER (WHERE r.is_bot = ANY($4::bool[])), 0)::bigint AS clicks,
       coalesce(sum(r.visitors) FILTER (WHERE r.is_bot = ANY($4::bool[])), 0)::bigint AS visitors,
       coalesce(sum(r.clicks) FILTER (WHERE r.is_bot), 0)::bigint AS bot_clicks
FROM click_rollups r
WHERE {links} AND r.dimension = '' AND r.hour >= $2 AND r.hour < $3
GROUP BY 1
"""

# The top $6 values of each dimension in $5, by clicks, then value (bytewise).
_TOP_VALUES = """
SELECT d.dimension, t.value, t.clicks, t.visitors
FROM unnest($5::text[]) AS d (dimension)
CROSS JOIN LATERAL (
    SELECT r.value COLLATE "C" AS value, sum(r.clicks)::bigint AS clicks,
           sum(r.visitors)::bigint AS visitors
    FROM click_rollups r
    WHERE {links} AND r.dimension = d.dimension AND r.hour >= $2 AND r.hour < $3
      AND r.is_bot = ANY($4::bool[])
    GROUP BY 1
    ORDER BY clicks DESC, value
    LIMIT $6
) AS t
ORDER BY d.dimension, t.clicks DESC, t.value
"""

# The top $5 links by clicks, and how many links had any (counted before the LIMIT).
_TOP_LINKS = """
SELECT u.code, u.target, t.clicks, t.visitors, count(*) OVER () AS links
FROM (
    SELECT r.url_id, sum(r.clicks)::bigint AS clicks, sum(r.visitors)::bigint AS visitors
    FROM click_rollups r
    WHERE {links} AND r.dimension = '' AND r.hour >= $2 AND r.hour < $3
      AND r.is_bot = ANY($4::bool[])
    GROUP BY r.url_id
) AS t
JOIN urls u ON u.id = t.url_id
ORDER BY t.clicks DESC, u.code
LIMIT $5
"""


@dataclass(frozen=True, slots=True)
class Window:
    """Whole UTC buckets from ``start`` (inclusive) to ``end`` (exclusive)."""

    start: datetime
    end: datetime
    interval: Interval
    bots: Bots = "include"

    @classmethod
    def covering(cls, start: datetime, end: datetime, interval: Interval, bots: Bots) -> Window:
        """The buckets holding [start, end): ``start`` rounded down, ``end`` up."""
        first = bucket_start(start, interval)
        last = bucket_start(end, interval)
        if last < end:
            last += STEP[interval]
        return cls(first, last, interval, bots)

    @property
    def points(self) -> int:
        return (self.end - self.start) // STEP[self.interval]

    def buckets(self) -> list[datetime]:
        step = STEP[self.interval]
        return [self.start + step * n for n in range(self.points)]


def bucket_start(at: datetime, interval: Interval) -> datetime:
    """The start of the UTC hour or day holding ``at``."""
    at = at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return at.replace(hour=0) if interval == "day" else at


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    clicks: int
    visitors: int
    bot_clicks: int


@dataclass(frozen=True, slots=True)
class Totals:
    clicks: int
    visitors: int
    bot_clicks: int

    @classmethod
    def of(cls, series: list[Point]) -> Totals:
        return cls(
            clicks=sum(p.clicks for p in series),
            visitors=sum(p.visitors for p in series),
            bot_clicks=sum(p.bot_clicks for p in series),
        )


@dataclass(frozen=True, slots=True)
class Ranked:
    value: str
    clicks: int
    visitors: int


@dataclass(frozen=True, slots=True)
class LinkClicks:
    code: str
    target: str
    clicks: int
    visitors: int


@dataclass(frozen=True, slots=True)
class Report:
    """Clicks in a window: a zero-filled series and the top values per dimension."""

    window: Window
    series: list[Point]
    top: dict[str, list[Ranked]]

    @property
    def totals(self) -> Totals:
        return Totals.of(self.series)


@dataclass(frozen=True, slots=True)
class Summary(Report):
    """A report over many links, with the links that had the most clicks."""

    links: int = 0  # links with clicks in the window (for the bots filter)
    top_links: tuple[LinkClicks, ...] = ()


class StatsStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def link(self, url_id: int, window: Window, top: int) -> Report:
        """One link's report, its top ``top`` values in each of LINK_DIMENSIONS."""
        async with _snapshot(self._pool) as conn:
            series = await _series(conn, _ONE_LINK, url_id, window)
            values = await _top_values(conn, _ONE_LINK, url_id, window, LINK_DIMENSIONS, top)
        return Report(window, series, values)

    async def summary(self, owner_id: int | None, window: Window, top: int) -> Summary:
        """The report over ``owner_id``'s links (None: every link)."""
        links = _EVERY_LINK if owner_id is None else _OWNER
        async with _snapshot(self._pool) as conn:
            series = await _series(conn, links, owner_id, window)
            values = await _top_values(conn, links, owner_id, window, SUMMARY_DIMENSIONS, top)
            rows = await conn.fetch(_TOP_LINKS.format(links=links), owner_id, *_bounds(window), top)
        return Summary(
            window,
            series,
            values,
            links=rows[0]["links"] if rows else 0,
            top_links=tuple(
                LinkClicks(row["code"], row["target"], row["clicks"], row["visitors"])
                for row in rows
            ),
        )


@asynccontextmanager
async def _snapshot(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A read-only REPEATABLE READ transaction: the queries of one report see the same
    rollups even while the worker adds clicks."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn


def _bounds(window: Window) -> tuple[datetime, datetime, list[bool]]:
    return window.start, window.end, _BOT_FLAGS[window.bots]


async def _series(
    conn: asyncpg.Connection, links: str, key: int | None, window: Window
) -> list[Point]:
    rows = await conn.fetch(_SERIES.format(links=links), key, *_bounds(window), window.interval)
    found = {row["at"]: row for row in rows}
    series = []
    for at in window.buckets():
        row = found.get(at)
        series.append(
            Point(at, row["clicks"], row["visitors"], row["bot_clicks"])
            if row
            else Point(at, 0, 0, 0)
        )
    return series


async def _top_values(
    conn: asyncpg.Connection,
    links: str,
    key: int | None,
    window: Window,
    dimensions: tuple[str, ...],
    top: int,
) -> dict[str, list[Ranked]]:
    rows = await conn.fetch(
        _TOP_VALUES.format(links=links), key, *_bounds(window), list(dimensions), top
    )
    values: dict[str, list[Ranked]] = {dimension: [] for dimension in dimensions}
    for row in rows:
        values[row["dimension"]].append(Ranked(row["value"], row["clicks"], row["visitors"]))
    return values
