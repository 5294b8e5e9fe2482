"""Migrations on a database of their own: up from empty, again (no-op), down, up."""

import asyncio
import os
import secrets
import subprocess
import sys

import pytest
from alembic.script import ScriptDirectory

from shorty import embedded
from shorty.embedded import drop_database
from shorty.store import migrate
from tests.helpers import query, scalar

TABLES = [
    "alembic_version",
    "api_keys",
    "chaos_experiments",
    "click_rollup_progress",
    "click_rollups",
    "click_visitors",
    "clicks",
    "idempotency_keys",
    "outbox",
    "refresh_tokens",
    "urls",
    "users",
]
SCHEMA = """
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY table_name, ordinal_position
"""


@pytest.fixture
def empty_db(stack):
    name = f"shorty_mig_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    yield url
    asyncio.run(drop_database(stack.admin_url, name))


def tables(url):
    """The tables (monthly click partitions left out: they depend on today's date)."""
    rows = query(
        url,
        "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        " AND relkind IN ('r', 'p') AND NOT relispartition",
    )
    return sorted(row[0] for row in rows)


def test_upgrade_rerun_downgrade_upgrade(empty_db):
    assert tables(empty_db) == []
    migrate.upgrade(empty_db)
    assert tables(empty_db) == TABLES
    head = ScriptDirectory.from_config(migrate.alembic_config(empty_db)).get_current_head()
    assert scalar(empty_db, "SELECT version_num FROM alembic_version") == head
    schema = query(empty_db, SCHEMA)

    migrate.upgrade(empty_db)  # nothing to do
    assert query(empty_db, SCHEMA) == schema

    migrate.downgrade(empty_db, "base")
    assert tables(empty_db) == ["alembic_version"]
    assert scalar(empty_db, "SELECT count(*) FROM alembic_version") == 0

    migrate.upgrade(empty_db)
    assert query(empty_db, SCHEMA) == schema


def test_concurrent_migrations_do_not_collide(empty_db):
    """Two `shorty migrate` processes at once (two hook Jobs): both succeed, one schema."""
    env = {**os.environ, "SHORTY_DATABASE_URL": empty_db}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "shorty", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=60)[0].decode() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert tables(empty_db) == TABLES


def test_lookup_by_code_is_an_index_scan(clean):
    url = clean.database_url
    query(
        url,
        "INSERT INTO urls (code, target) SELECT 'code' || g, 'https://example.com/' || g"
        " FROM generate_series(1, 5000) AS g",
    )
    query(url, "ANALYZE urls")
    plan = "\n".join(r[0] for r in query(url, "EXPLAIN SELECT * FROM urls WHERE code = 'code42'"))
    assert "Index Scan using urls_code_key" in plan


@pytest.mark.parametrize(
    ("sql", "constraint"),
    [
        ("INSERT INTO urls (code, target) VALUES ('ab', 'https://x.y')", "urls_code_check"),
        (
            "INSERT INTO urls (code, target, redirect_type) VALUES ('abc', 'https://x.y', 303)",
            "urls_redirect_type_check",
        ),
        (
            "INSERT INTO urls (code, target) VALUES ('abc', 'https://x.y/' || repeat('a', 2040))",
            "urls_target_check",
        ),
        ("INSERT INTO users (email) VALUES ('Upper@Case.x')", "users_email_check"),
        ("INSERT INTO users (email, max_links) VALUES ('a@b.c', -1)", "users_max_links_check"),
    ],
)
def test_constraints_guard_the_data(clean, sql, constraint):
    import asyncpg

    with pytest.raises(asyncpg.CheckViolationError, match=constraint):
        query(clean.database_url, sql)


def test_codes_are_unique(clean):
    import asyncpg

    query(clean.database_url, "INSERT INTO urls (code, target) VALUES ('dup', 'https://a.b')")
    with pytest.raises(asyncpg.UniqueViolationError, match="urls_code_key"):
        query(clean.database_url, "INSERT INTO urls (code, target) VALUES ('dup', 'https://c.d')")


def test_clicks_move_into_monthly_partitions_with_rollups(empty_db):
    """0004 -> 0005 on a database with clicks: each lands in its month's partition,
    and the rollups hold their totals."""
    migrate.upgrade(empty_db, "0004")
    query(empty_db, "INSERT INTO urls (code, target) VALUES ('abc', 'https://example.com')")
    query(
        empty_db,
        "INSERT INTO clicks (url_id, occurred_at, stream_id, referrer_host, visitor_hash)"
        " SELECT id, t, 's' || t, 'ref.example', 'v' FROM urls,"
        " unnest(ARRAY['2026-01-31 23:30+00', '2026-02-01 00:10+00', '2026-02-01 00:20+00']"
        "::timestamptz[]) AS t",
    )
    migrate.upgrade(empty_db)
    partitions = query(
        empty_db,
        "SELECT tableoid::regclass::text AS part, count(*) FROM clicks GROUP BY 1 ORDER BY 1",
    )
    assert [tuple(row) for row in partitions] == [("clicks_2026_01", 1), ("clicks_2026_02", 2)]
    totals = query(
        empty_db,
        "SELECT hour, clicks, visitors FROM click_rollups WHERE dimension = '' ORDER BY hour",
    )
    assert [(r["hour"].isoformat(), r["clicks"], r["visitors"]) for r in totals] == [
        ("2026-01-31T23:00:00+00:00", 1, 1),
        ("2026-02-01T00:00:00+00:00", 2, 1),
    ]
    migrate.downgrade(empty_db, "0004")
    assert scalar(empty_db, "SELECT count(*) FROM clicks") == 3


def test_clicks_stored_before_0011_keep_their_entry_id_as_click_id(empty_db):
    import asyncpg

    migrate.upgrade(empty_db, "0010")
    query(empty_db, "INSERT INTO urls (code, target) VALUES ('abc', 'https://example.com')")
    query(empty_db, "SELECT shorty_click_partition('2026-01-02 03:04+00')")
    insert = "INSERT INTO clicks ({}, url_id, occurred_at) VALUES ($1, 1, '2026-01-02 03:04+00')"
    query(empty_db, insert.format("stream_id"), "1767225600000-0")
    migrate.upgrade(empty_db)
    assert scalar(empty_db, "SELECT click_id FROM clicks") == "1767225600000-0"
    # Still the key, with the time: the same click at the same time is refused.
    with pytest.raises(asyncpg.UniqueViolationError):
        query(empty_db, insert.format("click_id"), "1767225600000-0")
    query(empty_db, insert.format("click_id"), "a1b2c3d4e5f6a7b80")
    migrate.downgrade(empty_db, "0010")
    assert scalar(empty_db, "SELECT count(stream_id) FROM clicks") == 2


def test_keys_made_before_0010_learn_their_ancestors(empty_db):
    migrate.upgrade(empty_db, "0009")
    query(empty_db, "INSERT INTO users (email) VALUES ('ada@example.com')")
    for key_id, parent in ((1, None), (2, 1), (3, 2), (4, None)):
        query(
            empty_db,
            "INSERT INTO api_keys (id, user_id, prefix, key_hash, parent_id)"
            " OVERRIDING SYSTEM VALUE VALUES ($1, 1, 'shk_x', $2, $3)",
            key_id,
            f"hash-{key_id}",
            parent,
        )
    migrate.upgrade(empty_db)
    rows = query(empty_db, "SELECT id, ancestor_ids FROM api_keys ORDER BY id")
    assert [(row[0], list(row[1])) for row in rows] == [(1, []), (2, [1]), (3, [1, 2]), (4, [])]
