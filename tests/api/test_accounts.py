"""API keys over the API, and the admin routes."""

import pytest

from shorty.core.accounts import DEFAULT_SCOPES
from tests.api.helpers import problem
from tests.helpers import bearer, scalar, user_with_key


@pytest.fixture
def ada(clean):
    """Ada's id and a key that may also mint and revoke keys (keys:write)."""
    return user_with_key(
        clean.database_url, "ada@example.com", scopes=(*DEFAULT_SCOPES, "keys:write")
    )


def test_create_list_use_and_revoke_a_key(api, ada, clean):
    created = api.post(
        "/api/v1/keys", json={"name": "ci", "scopes": ["urls:read"]}, headers=bearer(ada[1])
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("shk_")
    assert body["prefix"] == body["key"][:12]
    assert body["scopes"] == ["urls:read"]
    assert created.headers["cache-control"] == "no-store"
    new_key = body["key"]
    assert api.get("/api/v1/urls", headers=bearer(new_key)).status_code == 200
    problem(
        api.post("/api/v1/shorten", json={"target": "https://x.example"}, headers=bearer(new_key)),
        403,
        "insufficient-scope",
    )
    listed = api.get("/api/v1/keys", headers=bearer(ada[1])).json()["items"]
    assert {k["name"] for k in listed} == {"", "ci"}
    assert all("key" not in k for k in listed)
    used = next(k for k in listed if k["name"] == "ci")
    assert used["last_used_at"] is not None
    assert api.delete(f"/api/v1/keys/{body['id']}", headers=bearer(ada[1])).status_code == 204
    problem(api.get("/api/v1/urls", headers=bearer(new_key)), 401, "invalid-api-key")
    assert (
        scalar(clean.database_url, "SELECT count(*) FROM api_keys WHERE key_hash LIKE 'shk_%'") == 0
    )
    assert scalar(
        clean.database_url, "SELECT revoked_at IS NOT NULL FROM api_keys WHERE id = $1", body["id"]
    )


def test_default_scopes_match_the_core(api, ada):
    body = api.post("/api/v1/keys", json={}, headers=bearer(ada[1])).json()
    assert sorted(body["scopes"]) == sorted(DEFAULT_SCOPES)


def test_a_key_cannot_grant_more_than_it_has(api, clean):
    _, reader = user_with_key(
        clean.database_url, "reader@example.com", scopes=("urls:read", "keys:write")
    )
    response = api.post("/api/v1/keys", json={"scopes": ["urls:write"]}, headers=bearer(reader))
    assert "urls:write" in problem(response, 403, "insufficient-scope")["detail"]
    _, user = user_with_key(
        clean.database_url, "user@example.com", scopes=("urls:read", "keys:write")
    )
    problem(
        api.post("/api/v1/keys", json={"scopes": ["admin"]}, headers=bearer(user)),
        403,
        "insufficient-scope",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": ["root"]},
        {"name": "x" * 101},
        {"expires_at": "2001-01-01T00:00:00Z"},
        {"extra": 1},
    ],
)
def test_bad_key_requests(api, ada, body):
    response = api.post("/api/v1/keys", json=body, headers=bearer(ada[1]))
    assert response.status_code == 422


def test_revoking_someone_elses_key_is_404(api, ada, bob, clean):
    bobs_key_id = scalar(clean.database_url, "SELECT id FROM api_keys WHERE user_id = $1", bob[0])
    problem(api.delete(f"/api/v1/keys/{bobs_key_id}", headers=bearer(ada[1])), 404, "key-not-found")
    problem(api.delete("/api/v1/keys/abc", headers=bearer(ada[1])), 404, "not-found")
    assert api.get("/api/v1/urls", headers=bearer(bob[1])).status_code == 200


def test_admin_lists_disables_and_limits(api, ada, bob, admin, clean):
    problem(api.get("/api/v1/admin/users", headers=bearer(ada[1])), 403, "insufficient-scope")
    users = api.get("/api/v1/admin/users", headers=bearer(admin[1])).json()["items"]
    assert [u["email"] for u in users] == ["ada@example.com", "bob@example.com", "root@example.com"]
    disabled = api.patch(
        f"/api/v1/admin/users/{bob[0]}", json={"disabled": True}, headers=bearer(admin[1])
    )
    assert disabled.json()["disabled"] is True
    problem(api.get("/api/v1/urls", headers=bearer(bob[1])), 401, "invalid-api-key")
    limited = api.patch(
        f"/api/v1/admin/users/{ada[0]}", json={"rate_limit": "2/minute"}, headers=bearer(admin[1])
    )
    assert limited.json()["rate_limit"] == "2/minute"
    statuses = [api.get("/api/v1/urls", headers=bearer(ada[1])).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    key_id = scalar(clean.database_url, "SELECT id FROM api_keys WHERE user_id = $1", admin[0])
    patched = api.patch(
        f"/api/v1/admin/keys/{key_id}", json={"rate_limit": "9/hour"}, headers=bearer(admin[1])
    )
    assert patched.json()["rate_limit"] == "9/hour"
    assert (
        scalar(clean.database_url, "SELECT rate_limit FROM api_keys WHERE id = $1", key_id)
        == "9/hour"
    )


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/v1/admin/users/999999", {"disabled": True}, 404),
        ("/api/v1/admin/users/1", {"rate_limit": "lots"}, 422),
        ("/api/v1/admin/users/1", {}, 422),
        ("/api/v1/admin/keys/999999", {"rate_limit": None}, 404),
        ("/api/v1/admin/keys/1", {}, 422),
    ],
)
def test_admin_bad_requests(api, ada, admin, path, body, status):
    assert api.patch(path, json=body, headers=bearer(admin[1])).status_code == status


def test_admin_cannot_lock_themselves_out(api, admin):
    response = api.patch(
        f"/api/v1/admin/users/{admin[0]}", json={"disabled": True}, headers=bearer(admin[1])
    )
    problem(response, 422, "validation-failed")
