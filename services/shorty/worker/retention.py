"""Keeping the click tables in shape: next month's partition, old ones dropped.

Raw clicks older than ``SHORTY_CLICK_RETENTION_DAYS`` go a whole monthly
partition at a time, once every day of that month is past the horizon; the
hourly rollups the statistics read are kept. The day's visitor hashes are only
needed while clicks of that day are still being rolled up, so two days are
kept.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

import asyncpg

log = logging.getLogger(__name__)
_PARTITION = re.compile(r"clicks_(\d{4})_(\d{2})")
VISITOR_DAYS = 2


def month_after(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def expired_partitions(names: list[str], today: date, retention_days: int) -> list[str]:
    """The partitions whose whole month is older than ``retention_days`` before ``today``."""
    if retention_days <= 0:
        return []
    horizon = today - timedelta(days=retention_days)
    expired = []
    for name in names:
        match = _PARTITION.fullmatch(name)
        if match and month_after(date(int(match[1]), int(match[2]), 1)) <= horizon:
            expired.append(name)
    return sorted(expired)


async def partitions(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch(
        "SELECT c.relname FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'clicks'::regclass ORDER BY 1"
    )
    return [row["relname"] for row in rows]


async def apply_retention(
    pool: asyncpg.Pool, retention_days: int, now: datetime | None = None
) -> list[str]:
    """Create this and next month's partitions, drop expired ones and old visitor
    hashes; return the partitions dropped."""
    now = now or datetime.now(UTC)
    this_month = now.date().replace(day=1)
    for month in (this_month, month_after(this_month)):
        await pool.execute(
            "SELECT shorty_click_partition($1)", datetime.combine(month, datetime.min.time(), UTC)
        )
    dropped = expired_partitions(await partitions(pool), now.date(), retention_days)
    for name in dropped:
        # The name matched clicks_YYYY_MM above; quote it anyway.
        await pool.execute(f'DROP TABLE IF EXISTS "{name}"')
        log.info("dropped click partition %s (older than %d days)", name, retention_days)
    await pool.execute(
        "DELETE FROM click_visitors WHERE day < $1", now.date() - timedelta(days=VISITOR_DAYS)
    )
    return dropped
