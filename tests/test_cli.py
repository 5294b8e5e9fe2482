"""The `shorty` command against the real test database (SHORTY_DATABASE_URL set)."""

import asyncio
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from shorty import embedded
from shorty.cli import main
from shorty.store import migrate
from tests.helpers import query, scalar


@pytest.fixture
def cli(clean, monkeypatch):
    monkeypatch.setenv("SHORTY_DATABASE_URL", clean.database_url)
    runner = CliRunner()
    return lambda *args, **kw: runner.invoke(main, list(args), catch_exceptions=False, **kw)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["dev"],
        ["serve"],
        ["serve", "api"],
        ["serve", "redirect"],
        ["serve", "worker"],
        ["migrate"],
        ["user"],
        ["user", "create"],
        ["apikey"],
        ["apikey", "create"],
        ["apikey", "list"],
        ["apikey", "revoke"],
        ["dlq"],
        ["dlq", "list"],
        ["dlq", "show"],
        ["dlq", "replay"],
        ["dlq", "purge"],
        ["elk"],
        ["elk", "setup"],
    ],
)
def test_every_command_has_help(args):
    result = CliRunner().invoke(main, [*args, "--help"], prog_name="shorty")
    assert result.exit_code == 0
    assert "Usage: shorty" in result.output


def test_user_and_key_lifecycle(cli, clean):
    result = cli(
        "user",
        "create",
        "--email",
        "Ada@Example.com",
        "--admin",
        input="long enough pw\nlong enough pw\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created admin ada@example.com" in result.output

    created = cli(
        "apikey", "create", "--email", "ada@example.com", "--name", "ci", "--scope", "urls:read"
    )
    assert created.exit_code == 0, created.output
    raw = created.output.strip()
    assert raw.startswith("shk_")
    assert len(raw) == 44

    listed = cli("apikey", "list")
    assert listed.exit_code == 0
    assert raw[:12] + "..." in listed.output
    assert raw not in listed.output
    assert "ada@example.com" in listed.output
    assert "urls:read" in listed.output
    assert "active" in listed.output

    revoked = cli("apikey", "revoke", raw[:12] + "...")
    assert revoked.exit_code == 0, revoked.output
    assert "Revoked key 1" in revoked.output
    assert "revoked" in cli("apikey", "list", "--email", "ada@example.com").output
    assert scalar(clean.database_url, "SELECT revoked_at IS NOT NULL FROM api_keys") is True


def test_cli_errors_are_one_line(cli):
    result = cli("apikey", "create", "--email", "nobody@example.com")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: No user has the email 'nobody@example.com'."
    short = cli("user", "create", "--email", "x@example.com", "--password", "short")
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    bad_email = cli("user", "create", "--email", "not-an-email", "--password", "long enough pw")
    assert "is not an email address" in bad_email.output
    unknown = cli("apikey", "revoke", "shk_nope")
    assert "No live API key" in unknown.output
    bad_scope = cli("apikey", "create", "--email", "x@example.com", "--scope", "root")
    assert bad_scope.exit_code == 2
    assert "'root' is not one of" in bad_scope.output


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "abc"),  # read as OpenTelemetry's SDK is imported
        ("OTEL_PROPAGATORS", "bogus"),  # as its propagation is
    ],
)
def test_a_bad_otel_variable_read_at_import_is_one_line_for_every_command(name, value):
    """Not only `shorty serve`: `shorty dlq list` imports the SDK too (in a process of
    its own: this one has imported it already)."""
    environ = {**os.environ, name: value}
    environ |= {"SHORTY_DATABASE_URL": "postgresql://x@127.0.0.1:1/x"}
    environ |= {"SHORTY_REDIS_URL": "redis://127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "shorty", "dlq", "list"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{name}: {value} is not" in done.stderr


def test_migrate_is_repeatable(cli):
    first = cli("migrate")
    assert first.exit_code == 0
    assert "Database migrated to head." in first.output
    assert cli("migrate").exit_code == 0


def test_migrate_on_a_schema_newer_than_the_release(stack, monkeypatch):
    """A rollback: the previous release's pods start on a database a newer release
    migrated. The chart's init container runs `migrate --allow-newer`, which must not
    crash-loop them; plain `migrate` says what is wrong."""
    name = "shorty_test_newer"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    try:
        migrate.upgrade(url)
        query(url, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
        monkeypatch.setenv("SHORTY_DATABASE_URL", url)
        runner = CliRunner()
        refused = runner.invoke(main, ["migrate"])
        assert refused.exit_code == 1
        assert "9999_from_the_future, newer than this release knows" in refused.output
        allowed = runner.invoke(main, ["migrate", "--allow-newer"])
        assert allowed.exit_code == 0, allowed.output
        assert "Nothing to do" in allowed.output
        assert scalar(url, "SELECT version_num FROM alembic_version") == "9999_from_the_future"
    finally:
        asyncio.run(embedded.drop_database(stack.admin_url, name))


def test_long_key_name_is_a_clean_error(cli):
    cli("user", "create", "--email", "ada@example.com", "--password", "long enough pw")
    result = cli("apikey", "create", "--email", "ada@example.com", "--name", "n" * 101)
    assert result.exit_code == 1
    assert "at most 100 printable characters" in result.output


def test_unmigrated_database_says_to_migrate(stack, monkeypatch):
    import asyncio
    import secrets

    from shorty import embedded
    from shorty.embedded import drop_database

    name = f"shorty_bare_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    monkeypatch.setenv("SHORTY_DATABASE_URL", url)
    try:
        result = CliRunner().invoke(main, ["apikey", "list"])
    finally:
        asyncio.run(drop_database(stack.admin_url, name))
    assert result.exit_code == 1
    assert "run `shorty migrate` first" in result.output


def test_unreachable_database_is_a_clean_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SHORTY_DATABASE_URL", f"postgresql://x@/shorty?host={tmp_path}")
    result = CliRunner().invoke(main, ["apikey", "list"])
    assert result.exit_code == 1
    assert "Cannot reach PostgreSQL" in result.output


async def _as_the_api_sees_it(database_url, email, raw):
    """What the API would make of this user and key: their password login (any
    password) and the principal the key stands for."""
    from shorty.store.db import small_pool
    from shorty.store.keys import KeyStore
    from shorty.store.users import UserStore

    async with small_pool(database_url) as pool:
        login = await UserStore(pool).verify_password(email, "long enough pw")
        return login, await KeyStore(pool).authenticate(raw)


def test_apikey_create_user_makes_a_keys_only_account(cli, clean):
    created = cli(
        "apikey",
        "create",
        "--email",
        "Ops@Example.com",
        "--create-user",
        "--name",
        "operator",
        "--scope",
        "urls:read",
        "--scope",
        "urls:write",
    )
    assert created.exit_code == 0, created.output
    # The key alone on stdout, so that KEY=$(shorty apikey create ...) holds it.
    raw = created.stdout.strip()
    assert created.stdout == raw + "\n"
    assert raw.startswith("shk_")
    assert len(raw) == 44
    assert created.stderr.splitlines() == [
        "Created user ops@example.com (id 1) without a password: it cannot log in, "
        "it acts only through its API keys."
    ]
    rows = query(clean.database_url, "SELECT email, role, password_hash FROM users")
    assert [tuple(row) for row in rows] == [("ops@example.com", "user", None)]
    login, principal = asyncio.run(_as_the_api_sees_it(clean.database_url, "ops@example.com", raw))
    assert login is None
    assert principal is not None
    assert principal.user_id == 1
    assert principal.scopes == frozenset({"urls:read", "urls:write"})
    listed = cli("apikey", "list", "--email", "ops@example.com").output
    assert "operator" in listed
    assert "urls:read,urls:write" in listed

    # Again: the account exists now, so it only gets a second key, and nothing is said.
    again = cli("apikey", "create", "--email", "ops@example.com", "--create-user")
    assert again.exit_code == 0, again.output
    assert again.stderr == ""
    assert again.stdout.strip().startswith("shk_")
    assert again.stdout.strip() != raw
    assert scalar(clean.database_url, "SELECT count(*) FROM users") == 1
    assert scalar(clean.database_url, "SELECT count(*) FROM api_keys WHERE user_id = 1") == 2


def test_apikey_create_user_keeps_an_existing_users_password(cli, clean):
    cli("user", "create", "--email", "ada@example.com", "--password", "long enough pw")
    created = cli("apikey", "create", "--email", "ada@example.com", "--create-user")
    assert created.exit_code == 0, created.output
    assert created.stderr == ""
    raw = created.stdout.strip()
    login, principal = asyncio.run(_as_the_api_sees_it(clean.database_url, "ada@example.com", raw))
    assert login is not None
    assert login.email == "ada@example.com"
    assert principal is not None
    assert principal.user_id == login.id


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scope", "admin"], "Error: A user's key cannot hold admin; only admins hold 'admin'."),
        (["--name", "n" * 101], "Error: A key name is at most 100 printable characters."),
    ],
)
def test_apikey_create_user_refused_key_leaves_no_account(cli, clean, args, message):
    result = cli("apikey", "create", "--email", "ops@example.com", "--create-user", *args)
    assert result.exit_code == 1
    assert result.output.strip() == message
    assert scalar(clean.database_url, "SELECT count(*) FROM users") == 0
