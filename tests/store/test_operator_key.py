"""SHORTY_OPERATOR_API_KEY: the API provisions the ShortLink operator's key at start
with exactly urls:read and urls:write (store/bootstrap.py), as the chart relies on."""

import asyncio

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.core.errors import BootstrapRefused
from shorty.settings import Settings
from shorty.store.bootstrap import ensure_operator_api_key
from shorty.store.keys import KeyStore
from shorty.store.users import UserStore
from tests.helpers import on_pool, query

OPERATOR = "operator-key-0123456789abcdef"
ROTATED = "operator-key-rotated-0123456789"
EMAIL = "operator@shorty.localhost"


def test_the_key_is_made_once_with_exactly_the_operators_scopes(clean):
    async def scenario(pool):
        created = await asyncio.gather(
            *(ensure_operator_api_key(pool, OPERATOR, EMAIL) for _ in range(4))
        )
        return created, await KeyStore(pool).authenticate(OPERATOR)

    created, principal = on_pool(clean.database_url, scenario)
    assert sorted(created) == [False, False, False, True]
    assert principal.scopes == {"urls:read", "urls:write"}
    assert not principal.is_admin
    assert query(clean.database_url, "SELECT email, role FROM users") == [(EMAIL, "user")]


def test_a_new_value_revokes_the_old_key(clean):
    async def scenario(pool):
        await ensure_operator_api_key(pool, OPERATOR, EMAIL)
        await ensure_operator_api_key(pool, ROTATED, EMAIL)
        keys = KeyStore(pool)
        return await keys.authenticate(OPERATOR), await keys.authenticate(ROTATED)

    old, new = on_pool(clean.database_url, scenario)
    assert old is None
    assert new.scopes == {"urls:read", "urls:write"}


def test_a_key_made_by_hand_with_that_value_is_left_alone(clean):
    """`shorty apikey create` made it first (docs/operator.md): nothing to do."""

    async def scenario(pool):
        await ensure_operator_api_key(pool, OPERATOR, EMAIL)
        return await ensure_operator_api_key(pool, OPERATOR, "someone@example.com")

    assert on_pool(clean.database_url, scenario) is False
    assert query(clean.database_url, "SELECT count(*) FROM api_keys") == [(1,)]


@pytest.mark.parametrize("password", ["a registered password", None])
def test_refuses_an_account_with_a_password_or_an_admin(clean, password):
    async def scenario(pool):
        user = await UserStore(pool).create(EMAIL, password)
        if password is None:
            await pool.execute("UPDATE users SET role = 'admin' WHERE id = $1", user.id)
        with pytest.raises(BootstrapRefused, match="SHORTY_OPERATOR_EMAIL"):
            await ensure_operator_api_key(pool, OPERATOR, EMAIL)

    on_pool(clean.database_url, scenario)
    assert query(clean.database_url, "SELECT count(*) FROM api_keys") == [(0,)]


def test_the_api_provisions_it_at_start_and_the_address_is_reserved(clean):
    settings = Settings(
        database_url=clean.database_url,
        redis_url=clean.redis_url,
        public_url="https://sho.rt",
        operator_api_key=OPERATOR,
    )
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {OPERATOR}"}
        created = client.post(
            "/api/v1/shorten", json={"target": "https://example.com/op"}, headers=headers
        )
        assert created.status_code == 201, created.text
        stats = client.get(f"/api/v1/urls/{created.json()['code']}/stats", headers=headers)
        assert stats.status_code == 403  # no stats:read: the operator's key reads links only
        registered = client.post(
            "/api/v1/auth/register", json={"email": EMAIL, "password": "long enough pass"}
        )
        assert registered.status_code != 201
