"""Retention: monthly partitions made ahead, expired ones dropped, rollups kept."""

import asyncio
from datetime import UTC, date, datetime

import asyncpg

from shorty.worker.retention import apply_retention, expired_partitions, month_after
from tests.helpers import query, scalar


def test_month_after_wraps_the_year():
    assert month_after(date(2026, 12, 1)) == date(2027, 1, 1)
    assert month_after(date(2026, 1, 31)) == date(2026, 2, 1)


def test_a_partition_expires_once_its_whole_month_is_past_the_horizon():
    names = ["clicks_2026_01", "clicks_2026_02", "clicks_2026_03", "something_else"]
    # 2026-04-15 minus 45 days = 2026-03-01: January and February are wholly older.
    assert expired_partitions(names, date(2026, 4, 15), 45) == ["clicks_2026_01", "clicks_2026_02"]
    assert expired_partitions(names, date(2026, 4, 15), 46) == ["clicks_2026_01"]
    assert expired_partitions(names, date(2026, 4, 15), 0) == []  # 0: keep forever


def test_retention_drops_raw_clicks_and_keeps_rollups(clean):
    query(clean.database_url, "INSERT INTO urls (code, target) VALUES ('kept', 'https://e.com')")
    link_id = scalar(clean.database_url, "SELECT id FROM urls")
    for month in ("2026-01-10", "2026-05-10"):
        query(
            clean.database_url, "SELECT shorty_click_partition($1::date)", date.fromisoformat(month)
        )
        query(
            clean.database_url,
            "INSERT INTO clicks (click_id, url_id, occurred_at) VALUES ($1, $2, $3::date)",
            month,
            link_id,
            date.fromisoformat(month),
        )
    query(
        clean.database_url,
        "INSERT INTO click_rollups VALUES ($1, '2026-01-10', '', '', false, 1, 1)",
        link_id,
    )
    query(
        clean.database_url,
        "INSERT INTO click_visitors VALUES ($1, '2026-05-01', 'old'), ($1, '2026-05-19', 'new')",
        link_id,
    )

    async def run():
        pool = await asyncpg.create_pool(clean.database_url, min_size=1, max_size=1)
        try:
            now = datetime(2026, 5, 20, 12, tzinfo=UTC)
            return await apply_retention(pool, 90, now)
        finally:
            await pool.close()

    dropped = asyncio.run(run())
    assert "clicks_2026_01" in dropped
    parts = query(
        clean.database_url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'clicks'::regclass",
    )
    names = {r[0] for r in parts}
    assert {"clicks_2026_05", "clicks_2026_06"} <= names  # this month and the next
    assert "clicks_2026_01" not in names
    assert scalar(clean.database_url, "SELECT count(*) FROM clicks") == 1
    assert scalar(clean.database_url, "SELECT sum(clicks) FROM click_rollups") == 1
    visitors = query(clean.database_url, "SELECT visitor_hash FROM click_visitors")
    assert [r[0] for r in visitors] == ["new"]
