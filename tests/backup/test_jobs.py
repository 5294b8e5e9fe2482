"""``shorty backup create`` and ``restore`` against the real PostgreSQL: a backup
restored into a scratch database holds every row of every table, and Shorty serves
its links."""

import asyncio
import os
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest
import redis
from click.testing import CliRunner
from starlette.testclient import TestClient

from shorty.backup.files import backups_in
from shorty.backup.pgtools import embedded_bin, find_tool
from shorty.cli import main
from shorty.embedded import with_database
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from tests.conftest import PUBLIC_URL, TABLES
from tests.helpers import query, scalar

EVERYTHING = """
SELECT 'table' AS kind, schemaname || '.' || tablename AS name FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'sequence', schemaname || '.' || sequencename FROM pg_sequences
"""


def contents(url):
    """Every row of every table (sorted, as JSON text) and every sequence's state,
    by name."""
    found = {}
    for kind, name in query(url, EVERYTHING):
        schema, _, relation = name.partition(".")
        quoted = f'"{schema}"."{relation}"'
        if kind == "table":
            rows = query(url, f"SELECT to_jsonb(t)::text FROM {quoted} t")
            found[name] = sorted(row[0] for row in rows)
        else:
            found[name] = [tuple(query(url, f"SELECT last_value, is_called FROM {quoted}")[0])]
    return found


def shorty(*args, env=None):
    """Run `shorty ARGS`; its result (exit code, stdout, stderr apart)."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def shorty_list(archive):
    """``pg_restore --list`` of ``archive`` (which must read)."""
    tool = find_tool("pg_restore")
    return subprocess.run(
        [str(tool.path), "--list", str(archive)], capture_output=True, text=True, check=True
    ).stdout


def backup_env(url):
    return {"SHORTY_DATABASE_URL": url}


def test_a_backup_restored_holds_every_row_and_shorty_serves_its_links(
    seeded, clean, scratch, tmp_path
):
    before = contents(clean.database_url)
    nonempty = {name for name, rows in before.items() if rows}
    expected = {"public.users", "public.api_keys", "public.urls", "public.clicks"}
    assert expected | {"public.click_rollups", "public.alembic_version"} <= nonempty

    made = shorty("backup", "create", "--to", str(tmp_path), env=backup_env(clean.database_url))
    assert made.exit_code == 0, made.output
    archive = made.stdout.strip()
    assert [b.path for b in backups_in(tmp_path)] == [tmp_path / os.path.basename(archive)]
    assert os.listdir(tmp_path) == [os.path.basename(archive)]  # no .partial left

    restored = shorty("backup", "restore", archive, env=backup_env(scratch))
    assert restored.exit_code == 0, restored.output
    assert contents(scratch) == before

    # Only the restored database holds the links now, and Redis has no copy of them.
    query(clean.database_url, f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    redis.Redis.from_url(clean.redis_url).flushdb()
    settings = Settings(database_url=scratch, redis_url=clean.redis_url, public_url=PUBLIC_URL)
    with TestClient(create_redirect(settings)) as redirect:
        answer = redirect.get("/restored", follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"] == "https://example.org/kept"
        assert redirect.get(f"/{seeded[0]}", follow_redirects=False).status_code == 302
        assert redirect.get("/missing0", follow_redirects=False).status_code == 404


def test_restore_refuses_a_database_that_is_not_empty_unless_clean(seeded, clean, tmp_path):
    archive = shorty("backup", "create", "--to", str(tmp_path), env=backup_env(clean.database_url))
    assert archive.exit_code == 0, archive.output
    path = archive.stdout.strip()
    before = contents(clean.database_url)
    query(clean.database_url, "DELETE FROM urls WHERE code = 'restored'")

    refused = shorty("backup", "restore", path, env=backup_env(clean.database_url))
    assert refused.exit_code == 3
    assert "not empty" in refused.stderr
    assert "--clean" in refused.stderr
    assert scalar(clean.database_url, "SELECT count(*) FROM urls WHERE code = 'restored'") == 0

    # A folder restores its newest backup.
    replaced = shorty(
        "backup", "restore", str(tmp_path), "--clean", env=backup_env(clean.database_url)
    )
    assert replaced.exit_code == 0, replaced.output
    assert contents(clean.database_url) == before


def test_restore_creates_a_missing_database_only_when_asked(seeded, clean, stack, tmp_path):
    made = shorty("backup", "create", "--to", str(tmp_path), env=backup_env(clean.database_url))
    target = with_database(clean.database_url, "shorty_restore_new")
    try:
        missing = shorty("backup", "restore", made.stdout.strip(), env=backup_env(target))
        assert missing.exit_code == 1
        assert "does not exist" in missing.stderr
        created = shorty(
            "backup", "restore", made.stdout.strip(), "--create-database", env=backup_env(target)
        )
        assert created.exit_code == 0, created.output
        assert scalar(target, "SELECT target FROM urls WHERE code = 'restored'") == (
            "https://example.org/kept"
        )
    finally:
        query(stack.admin_url, "DROP DATABASE IF EXISTS shorty_restore_new WITH (FORCE)")


def test_a_failed_restore_changes_nothing(clean, scratch, tmp_path):
    broken = tmp_path / "shorty-20260101T000000Z.dump"
    broken.write_bytes(b"PGDMP not really")
    failed = shorty("backup", "restore", str(broken), env=backup_env(scratch))
    assert failed.exit_code == 1
    assert "pg_restore failed" in failed.stderr
    assert scalar(scratch, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0


def test_a_clean_restore_that_fails_midway_leaves_the_database_as_it_was(seeded, clean, tmp_path):
    made = shorty("backup", "create", "--to", str(tmp_path), env=backup_env(clean.database_url))
    whole = Path(made.stdout.strip()).read_bytes()
    cut = tmp_path / "shorty-20260101T000000Z.dump"
    # Its table of contents (at the start) still reads; its last data blocks are gone.
    cut.write_bytes(whole[:-500])
    assert "TABLE DATA public urls" in shorty_list(cut)
    before = contents(clean.database_url)

    failed = shorty("backup", "restore", str(cut), "--clean", env=backup_env(clean.database_url))
    assert failed.exit_code == 1
    assert "pg_restore failed" in failed.stderr
    assert contents(clean.database_url) == before  # the schema dropped first came back


def test_keep_leaves_exactly_the_newest_backups_and_nothing_else(clean, tmp_path):
    old = [f"shorty-2026010{day}T000000Z.dump" for day in range(1, 6)]
    for name in old:
        (tmp_path / name).write_bytes(b"old")
    strangers = ["notes.txt", "shorty-latest.dump", "other-20260101T000000Z.dump"]
    for name in strangers:
        (tmp_path / name).write_text("not a backup")

    made = shorty(
        "backup", "create", "--to", str(tmp_path), "--keep", "3",
        env=backup_env(clean.database_url),
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    newest = os.path.basename(made.stdout.strip())
    assert sorted(os.listdir(tmp_path)) == sorted([*old[-2:], newest, *strangers])
    listed = shorty("backup", "list", "--from", str(tmp_path))
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == [
        str(tmp_path / name) for name in [*old[-2:], newest]
    ]
    assert listed.stdout.splitlines()[0].startswith("2026-01-04T00:00:00Z")


@pytest.mark.parametrize(
    "broken",
    [
        lambda url, tmp: url.partition("?")[0] + f"?host={tmp}/nowhere",
        lambda url, tmp: with_database(url, "no_such_database"),
    ],
    ids=["unreachable-server", "no-such-database"],
)
def test_a_failed_dump_exits_nonzero_and_leaves_no_file_and_prunes_nothing(clean, tmp_path, broken):
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "shorty-20260101T000000Z.dump").write_bytes(b"the only backup")
    url = broken(clean.database_url, tmp_path)
    failed = shorty("backup", "create", "--to", str(folder), "--keep", "1", env=backup_env(url))
    assert failed.exit_code == 1
    assert failed.stderr.startswith("Error: backup failed: pg_dump failed")
    assert os.listdir(folder) == ["shorty-20260101T000000Z.dump"]


def test_a_dump_that_overruns_its_timeout_is_stopped_and_leaves_no_file(clean, tmp_path):
    async def hold_then_dump():
        # pg_dump waits for a lock on every table: a transaction holding one makes it
        # wait past its deadline.
        conn = await asyncpg.connect(clean.database_url)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE urls IN ACCESS EXCLUSIVE MODE")
                started = time.monotonic()
                result = await asyncio.to_thread(
                    shorty,
                    "backup", "create", "--to", str(tmp_path), "--timeout", "1",
                    env=backup_env(clean.database_url),
                )  # fmt: skip
                return result, time.monotonic() - started
        finally:
            await conn.close()

    result, took = asyncio.run(hold_then_dump())
    assert result.exit_code == 1
    assert "pg_dump did not finish within 1 s" in result.stderr
    assert took < 10
    assert os.listdir(tmp_path) == []


def test_the_password_goes_by_environment_and_is_never_shown(clean, scratch, tmp_path):
    """pgserver trusts local connections, so a password in the URL is accepted and
    ignored: enough to see where it goes. The tools are wrapped to record their
    command line and PGPASSWORD, then run for real."""
    secret = "s3cret-pa%ss"
    encoded = "s3cret-pa%25ss"
    real = embedded_bin()
    assert real is not None
    wrapped = tmp_path / "bin"
    wrapped.mkdir()
    record = tmp_path / "calls"
    for tool in ("pg_dump", "pg_restore", "psql"):
        script = wrapped / tool
        script.write_text(
            "#!/bin/sh\n"
            f'printf "%s|%s\\n" "$*" "$PGPASSWORD" >> {record}\n'
            f'exec {real}/{tool} "$@"\n'
        )
        script.chmod(0o755)
    url = clean.database_url.replace("postgresql://postgres:@", f"postgresql://postgres:{encoded}@")
    assert encoded in url
    folder = tmp_path / "backups"
    good = shorty("backup", "create", "--to", str(folder), "--pg-bin", str(wrapped),
                  env=backup_env(url))  # fmt: skip
    assert good.exit_code == 0, good.output
    bad_url = with_database(url, "no_such_database")
    bad = shorty("backup", "create", "--to", str(tmp_path / "other"), "--pg-bin", str(wrapped),
                 env=backup_env(bad_url))  # fmt: skip
    assert bad.exit_code == 1
    assert "no_such_database" in bad.stderr
    restore_url = scratch.replace("postgresql://postgres:@", f"postgresql://postgres:{encoded}@")
    restored = shorty("backup", "restore", good.stdout.strip(), "--pg-bin", str(wrapped),
                      env=backup_env(restore_url))  # fmt: skip
    assert restored.exit_code == 0, restored.output
    calls = [line.rpartition("|") for line in record.read_text().splitlines()]
    connecting = [(args, pw) for args, _, pw in calls if "--dbname=" in args]
    assert len(connecting) == 3  # two dumps, one psql
    assert {password for _, password in connecting} == {secret}
    for args, _, _ in calls:
        assert secret not in args
        assert encoded not in args
    for output in (good.output, bad.output, restored.output):
        assert secret not in output
        assert encoded not in output
