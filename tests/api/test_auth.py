import asyncio

import asyncpg
import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.settings import Settings
from shorty.store.keys import KeyStore
from tests.api.helpers import problem
from tests.helpers import bearer, user_with_key

BODY = {"target": "https://example.com"}


@pytest.mark.parametrize(
    ("headers", "slug"),
    [
        ({}, "unauthenticated"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unauthenticated"),
        ({"Authorization": "Bearer"}, "unauthenticated"),
        ({"Authorization": "Bearer " + "x" * 600}, "unauthenticated"),
        ({"Authorization": "Bearer shk_unknownkey"}, "invalid-api-key"),
    ],
)
def test_missing_or_bad_key_is_401(api, headers, slug):
    for response in (
        api.post("/api/v1/shorten", json=BODY, headers=headers),
        api.get("/api/v1/urls/abc", headers=headers),
        api.delete("/api/v1/urls/abc", headers=headers),
    ):
        problem(response, 401, slug)
        assert response.headers["www-authenticate"] == 'Bearer realm="shorty"'


def test_revoked_key_is_401(api, ada, clean):
    async def revoke():
        pool = await asyncpg.create_pool(clean.database_url, min_size=1, max_size=1)
        try:
            await KeyStore(pool).revoke(ada[1][:12])
        finally:
            await pool.close()

    assert api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1])).status_code == 201
    asyncio.run(revoke())
    problem(api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1])), 401, "invalid-api-key")


def test_read_only_key_cannot_write(api, clean):
    _, key = user_with_key(clean.database_url, "reader@example.com", scopes=("urls:read",))
    body = problem(
        api.post("/api/v1/shorten", json=BODY, headers=bearer(key)), 403, "insufficient-scope"
    )
    assert "urls:write" in body["detail"]
    problem(api.delete("/api/v1/urls/abc", headers=bearer(key)), 403, "insufficient-scope")
    problem(api.get("/api/v1/urls/abc", headers=bearer(key)), 404, "link-not-found")


def test_initial_api_key_bootstraps_an_admin(clean):
    settings = Settings(
        database_url=clean.database_url,
        redis_url=clean.redis_url,
        public_url="https://sho.rt",
        initial_api_key="ci-bootstrap-key-1234567890",
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/api/v1/shorten", json=BODY, headers=bearer("ci-bootstrap-key-1234567890")
        )
        assert response.status_code == 201
    # A restart with the same setting changes nothing and the key still works.
    with TestClient(create_app(settings)) as client:
        code = response.json()["code"]
        assert (
            client.get(
                f"/api/v1/urls/{code}", headers=bearer("ci-bootstrap-key-1234567890")
            ).status_code
            == 200
        )
