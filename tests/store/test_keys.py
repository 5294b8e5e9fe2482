import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from shorty.core.errors import BootstrapRefused, InvalidAccount
from shorty.store.bootstrap import ensure_initial_api_key
from shorty.store.keys import KeyStore
from shorty.store.users import UserStore
from tests.e2e.processes import service_env
from tests.helpers import free_port, on_pool, query

INITIAL = "bootstrap-key-0123456789"


def test_key_is_stored_hashed_and_authenticates(clean):
    async def scenario(pool):
        user = await UserStore(pool).create("Ada@Example.com", None)
        key, raw = await KeyStore(pool).create(user.id, name="ci")
        return user, key, raw, await KeyStore(pool).authenticate(raw)

    user, key, raw, principal = on_pool(clean.database_url, scenario)
    assert user.email == "ada@example.com"
    assert key.prefix == raw[:12]
    assert principal.user_id == user.id
    assert principal.scopes == {"urls:read", "urls:write", "stats:read"}
    assert not principal.is_admin
    stored = query(clean.database_url, "SELECT key_hash, prefix FROM api_keys")[0]
    assert raw not in stored["key_hash"]
    assert stored["prefix"] == raw[:12]


def test_revoked_expired_and_disabled_keys_fail(clean):
    async def scenario(pool):
        users, keys = UserStore(pool), KeyStore(pool)
        user = await users.create("ada@example.com", None)
        _, revoked = await keys.create(user.id)
        revoked_key = await keys.revoke(revoked[:12])
        past = datetime.now(UTC) - timedelta(seconds=1)
        _, expired = await keys.create(user.id, expires_at=past)
        other = await users.create("bob@example.com", None)
        _, disabled = await keys.create(other.id)
        await pool.execute("UPDATE users SET disabled = true WHERE id = $1", other.id)
        results = [await keys.authenticate(raw) for raw in (revoked, expired, disabled, "nope")]
        return revoked_key, results

    revoked_key, results = on_pool(clean.database_url, scenario)
    assert revoked_key.revoked_at is not None
    assert results == [None, None, None, None]


def test_revoke_needs_exactly_one_match(clean):
    async def scenario(pool):
        await UserStore(pool).create("ada@example.com", None)
        await KeyStore(pool).revoke("shk_nothing")

    with pytest.raises(InvalidAccount, match="No live API key"):
        on_pool(clean.database_url, scenario)


def test_user_rules(clean):
    async def duplicate(pool):
        await UserStore(pool).create("ada@example.com", "correct horse")
        await UserStore(pool).create("ADA@example.com", "battery staple")

    with pytest.raises(InvalidAccount, match="already exists"):
        on_pool(clean.database_url, duplicate)

    async def bad_role(pool):
        await UserStore(pool).create("eve@example.com", None, role="root")

    with pytest.raises(InvalidAccount, match="Unknown role"):
        on_pool(clean.database_url, bad_role)


def test_password_is_hashed_with_argon2_and_verifies(clean):
    async def scenario(pool):
        users = UserStore(pool)
        await users.create("ada@example.com", "correct horse battery")
        return (
            await users.verify_password("ada@example.com", "correct horse battery"),
            await users.verify_password("ada@example.com", "wrong password!"),
            await users.verify_password("nobody@example.com", "correct horse battery"),
        )

    good, wrong, unknown = on_pool(clean.database_url, scenario)
    assert good is not None
    assert good.email == "ada@example.com"
    assert wrong is None
    assert unknown is None
    stored = query(clean.database_url, "SELECT password_hash FROM users")[0][0]
    assert stored.startswith("$argon2id$")


def test_initial_key_is_created_once_even_when_replicas_race(clean):
    async def scenario(pool):
        created = await asyncio.gather(
            *(ensure_initial_api_key(pool, INITIAL, "admin@example.com") for _ in range(4))
        )
        return created, await KeyStore(pool).authenticate(INITIAL)

    created, principal = on_pool(clean.database_url, scenario)
    assert sorted(created) == [False, False, False, True]
    assert principal.is_admin
    assert query(clean.database_url, "SELECT prefix FROM api_keys")[0][0] == "boot"


def test_initial_key_is_ignored_when_a_key_exists(clean):
    async def scenario(pool):
        user = await UserStore(pool).create("ada@example.com", None)
        await KeyStore(pool).create(user.id)
        created = await ensure_initial_api_key(pool, INITIAL, "admin@example.com")
        return created, await KeyStore(pool).authenticate(INITIAL)

    assert on_pool(clean.database_url, scenario) == (False, None)


def test_start_up_refuses_to_crown_an_account_with_a_password(clean):
    """Issue #12 item 4: someone registered the start-up admin's address first."""

    async def scenario(pool):
        await UserStore(pool).create("admin@example.com", "the attacker's password")
        with pytest.raises(BootstrapRefused, match="belongs to an account with a password"):
            await ensure_initial_api_key(pool, INITIAL, "admin@example.com")
        return await KeyStore(pool).authenticate(INITIAL)

    assert on_pool(clean.database_url, scenario) is None
    assert query(clean.database_url, "SELECT role FROM users")[0][0] == "user"


def test_serve_api_stops_with_one_line_when_start_up_is_refused(clean):
    on_pool(clean.database_url, lambda pool: UserStore(pool).create("admin@example.com", "x" * 12))
    env = service_env(
        clean.database_url,
        clean.redis_url,
        SHORTY_INITIAL_API_KEY=INITIAL,
        SHORTY_INITIAL_ADMIN_EMAIL="admin@example.com",
    )
    done = subprocess.run(
        [sys.executable, "-m", "shorty", "serve", "api", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: SHORTY_INITIAL_ADMIN_EMAIL (admin@example.com) belongs to")
