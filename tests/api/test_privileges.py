"""Who may do what with keys: effective scopes (a key's scopes ∩ its owner's role),
keys:write for minting and revoking, children bounded by their parent, a cap on
live keys (issue #12, items 1 and 3)."""

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.api.routes import OPERATIONS
from shorty.cli import main
from shorty.store.keys import KeyStore
from tests.api.helpers import problem
from tests.helpers import bearer, query, scalar, user_with_key, waiting_on_a_lock

PASSWORD = "correct horse battery"
ALL = ["admin", "keys:write", "stats:read", "urls:read", "urls:write"]


def login(api, email):
    response = api.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def register(api, email):
    response = api.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code in (201, 202), response.text


def lineage(api):
    """Ada's access token and three keys, each minted by the one before (the first by
    her login session): token, parent, child, grandchild."""
    register(api, "ada@example.com")
    token = login(api, "ada@example.com")
    parent = api.post("/api/v1/keys", json={}, headers=bearer(token)).json()
    child = api.post(
        "/api/v1/keys", json={"scopes": ["urls:read", "keys:write"]}, headers=bearer(parent["key"])
    ).json()
    grandchild = api.post(
        "/api/v1/keys", json={"scopes": ["urls:read"]}, headers=bearer(child["key"])
    ).json()
    return token, parent, child, grandchild


def user_id(clean, email):
    return scalar(clean.database_url, "SELECT id FROM users WHERE email = $1", email)


def admin_calls(user):
    """One request per admin route (the tag 'admin' of the routing table)."""
    calls = []
    for route, op in OPERATIONS:
        if op.tag != "admin":
            continue
        for method in sorted(route.methods - {"HEAD"}):
            path = route.path.replace("{user_id}", str(user)).replace("{key_id}", "1")
            path = path.replace("{letter_id}", "1-1")
            body = {"role": "admin"} if "{user_id}" in route.path else {"rate_limit": None}
            calls.append((method, path, body if method == "PATCH" else None))
    assert len(calls) >= 3
    return calls


def test_a_demoted_admin_keeps_nothing_of_admin(api, admin, clean):
    """Promote, mint an admin key, demote: every admin route refuses that key, and it
    cannot promote its owner back (item 1)."""
    register(api, "eve@example.com")
    eve = user_id(clean, "eve@example.com")
    promoted = api.patch(
        f"/api/v1/admin/users/{eve}", json={"role": "admin"}, headers=bearer(admin[1])
    )
    assert promoted.json()["role"] == "admin"
    minted = api.post(
        "/api/v1/keys", json={"scopes": ALL}, headers=bearer(login(api, "eve@example.com"))
    )
    assert minted.status_code == 201, minted.text
    key = minted.json()["key"]
    assert api.get("/api/v1/admin/users", headers=bearer(key)).status_code == 200

    demoted = api.patch(
        f"/api/v1/admin/users/{eve}", json={"role": "user"}, headers=bearer(admin[1])
    )
    assert demoted.json()["role"] == "user"
    stored = scalar(clean.database_url, "SELECT scopes FROM api_keys WHERE user_id = $1", eve)
    assert "admin" not in stored  # the demotion took it from the key's row too
    # ... and the request path cuts it even from a row that still holds it.
    query(
        clean.database_url,
        "UPDATE api_keys SET scopes = $2 WHERE user_id = $1",
        eve,
        ALL,
    )
    for method, path, body in admin_calls(eve):
        problem(
            api.request(method, path, json=body, headers=bearer(key)), 403, "insufficient-scope"
        )
    everyone = api.get("/api/v1/stats/summary?all=true", headers=bearer(key))
    problem(everyone, 403, "insufficient-scope")
    assert scalar(clean.database_url, "SELECT role FROM users WHERE id = $1", eve) == "user"
    problem(
        api.post("/api/v1/keys", json={"scopes": ["admin"]}, headers=bearer(key)),
        403,
        "insufficient-scope",
    )


def test_a_session_of_a_demoted_admin_is_no_admin(api, admin, clean):
    register(api, "eve@example.com")
    eve = user_id(clean, "eve@example.com")
    api.patch(f"/api/v1/admin/users/{eve}", json={"role": "admin"}, headers=bearer(admin[1]))
    token = login(api, "eve@example.com")
    assert api.get("/api/v1/admin/users", headers=bearer(token)).status_code == 200
    api.patch(f"/api/v1/admin/users/{eve}", json={"role": "user"}, headers=bearer(admin[1]))
    problem(api.get("/api/v1/admin/users", headers=bearer(token)), 403, "insufficient-scope")


def test_the_cli_refuses_an_admin_scope_for_a_non_admin(clean, monkeypatch):
    monkeypatch.setenv("SHORTY_DATABASE_URL", clean.database_url)
    user_with_key(clean.database_url, "ada@example.com")
    result = CliRunner().invoke(
        main, ["apikey", "create", "--email", "ada@example.com", "--scope", "admin"]
    )
    assert result.exit_code == 1
    assert "only admins hold 'admin'" in result.output
    assert scalar(clean.database_url, "SELECT count(*) FROM api_keys") == 1


def test_minting_and_revoking_need_keys_write(api, ada, clean):
    """A default key (urls:read, urls:write, stats:read) can neither mint nor revoke."""
    problem(api.post("/api/v1/keys", json={}, headers=bearer(ada[1])), 403, "insufficient-scope")
    own = scalar(clean.database_url, "SELECT id FROM api_keys WHERE user_id = $1", ada[0])
    problem(api.delete(f"/api/v1/keys/{own}", headers=bearer(ada[1])), 403, "insufficient-scope")
    assert api.get("/api/v1/keys", headers=bearer(ada[1])).status_code == 200  # reading is fine


def test_a_login_session_mints_keys_that_may_mint(api, clean):
    register(api, "ada@example.com")
    token = login(api, "ada@example.com")
    parent = api.post("/api/v1/keys", json={"name": "laptop"}, headers=bearer(token)).json()
    assert parent["scopes"] == ["keys:write", "stats:read", "urls:read", "urls:write"]
    assert parent["parent_id"] is None
    child = api.post("/api/v1/keys", json={"name": "ci"}, headers=bearer(parent["key"])).json()
    assert child["scopes"] == ["stats:read", "urls:read", "urls:write"]  # narrower by default
    assert child["parent_id"] == parent["id"]
    problem(
        api.post("/api/v1/keys", json={}, headers=bearer(child["key"])), 403, "insufficient-scope"
    )


def test_a_child_never_outlives_its_parent_and_keeps_its_limit(api, admin, clean):
    _, parent = user_with_key(
        clean.database_url, "ada@example.com", scopes=("keys:write", "urls:read")
    )
    parent_id = scalar(clean.database_url, "SELECT max(id) FROM api_keys")
    soon = datetime.now(UTC) + timedelta(days=1)
    query(
        clean.database_url,
        "UPDATE api_keys SET expires_at = $2, rate_limit = '7/minute' WHERE id = $1",
        parent_id,
        soon,
    )
    child = api.post("/api/v1/keys", json={"scopes": ["urls:read"]}, headers=bearer(parent))
    assert child.status_code == 201, child.text
    child = child.json()
    assert datetime.fromisoformat(child["expires_at"]) == soon
    assert child["rate_limit"] == "7/minute"
    later = (soon + timedelta(days=1)).isoformat()
    refused = api.post("/api/v1/keys", json={"expires_at": later}, headers=bearer(parent))
    assert "cannot outlive" in problem(refused, 422, "invalid-expiry")["detail"]
    # An admin may lift the inherited limit.
    lifted = api.patch(
        f"/api/v1/admin/keys/{child['id']}", json={"rate_limit": None}, headers=bearer(admin[1])
    )
    assert lifted.json()["rate_limit"] is None


def test_revoking_a_key_revokes_what_it_minted(api, clean):
    token, parent, child, grandchild = lineage(api)
    assert api.get("/api/v1/urls", headers=bearer(grandchild["key"])).status_code == 200
    assert api.delete(f"/api/v1/keys/{parent['id']}", headers=bearer(token)).status_code == 204
    for key in (parent, child, grandchild):
        problem(api.get("/api/v1/urls", headers=bearer(key["key"])), 401, "invalid-api-key")


def test_live_keys_per_user_are_capped(settings, clean):
    capped = settings.model_copy(update={"max_keys_per_user": 3})
    with TestClient(create_app(capped)) as api:
        _, parent = user_with_key(
            clean.database_url, "ada@example.com", scopes=("keys:write", "urls:read")
        )
        made = [api.post("/api/v1/keys", json={}, headers=bearer(parent)) for _ in range(3)]
        assert [r.status_code for r in made] == [201, 201, 403]
        body = problem(made[2], 403, "quota-exceeded")
        assert body["quota"] == "keys"
        assert body["limit"] == 3
        # A revoked key frees its place.
        assert (
            api.delete(f"/api/v1/keys/{made[0].json()['id']}", headers=bearer(parent)).status_code
            == 204
        )
        assert api.post("/api/v1/keys", json={}, headers=bearer(parent)).status_code == 201


@pytest.mark.parametrize("scopes", [["admin"], ["urls:read", "admin"]])
def test_a_users_key_never_holds_admin(api, clean, scopes):
    register(api, "ada@example.com")
    token = login(api, "ada@example.com")
    problem(
        api.post("/api/v1/keys", json={"scopes": scopes}, headers=bearer(token)),
        403,
        "insufficient-scope",
    )


def test_a_limit_on_a_key_reaches_the_keys_it_minted(api, admin, clean):
    """A review minted children, then had an admin throttle the parent: the children
    kept the rate they were minted with. Every request of a key spends from the keys
    above it too."""
    token, parent, child, grandchild = lineage(api)
    throttled = api.patch(
        f"/api/v1/admin/keys/{parent['id']}",
        json={"rate_limit": "3/hour"},
        headers=bearer(admin[1]),
    )
    assert throttled.status_code == 200
    # The grandchild's own limit is lifted: it still spends from the parent's.
    api.patch(
        f"/api/v1/admin/keys/{grandchild['id']}",
        json={"rate_limit": "off"},
        headers=bearer(admin[1]),
    )
    used = [
        api.get("/api/v1/urls", headers=bearer(key["key"])).status_code
        for key in (grandchild, child, grandchild, child)
    ]
    assert used == [200, 200, 200, 429]
    assert api.get("/api/v1/urls", headers=bearer(parent["key"])).status_code == 429
    assert api.get("/api/v1/urls", headers=bearer(token)).status_code == 200  # not a key's


def test_a_key_minted_while_its_parent_is_revoked_is_revoked_too(api, clean):
    """A review revoked a key while a child was being minted under it, and the child
    lived on. Revocation takes the owner's lock that minting holds, so it sees the
    child once the mint commits. (The mint's transaction is replayed here with the
    locks KeyStore.create takes, held open while the revocation starts.)"""
    register(api, "ada@example.com")
    token = login(api, "ada@example.com")
    parent = api.post("/api/v1/keys", json={}, headers=bearer(token)).json()
    user_id = scalar(clean.database_url, "SELECT id FROM users")

    async def scenario():
        pool = await asyncpg.create_pool(clean.database_url, min_size=1, max_size=4)
        try:
            async with pool.acquire() as minting:
                mint = minting.transaction()
                await mint.start()
                await minting.execute("SELECT FROM users WHERE id = $1 FOR UPDATE", user_id)
                await minting.execute("SELECT FROM api_keys WHERE id = $1 FOR SHARE", parent["id"])
                child = await minting.fetchval(
                    "INSERT INTO api_keys (user_id, prefix, key_hash, parent_id, ancestor_ids)"
                    " VALUES ($1, 'shk_racing', 'racing', $2, $3) RETURNING id",
                    user_id,
                    parent["id"],
                    [parent["id"]],
                )
                revoking = asyncio.create_task(
                    KeyStore(pool).revoke_owned(parent["id"], owner_id=user_id)
                )
                await waiting_on_a_lock(pool)
                await mint.commit()
            await revoking
            return child
        finally:
            await pool.close()

    child = asyncio.run(scenario())
    assert scalar(
        clean.database_url, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1", child
    )
