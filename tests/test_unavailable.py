"""PostgreSQL going away under running services: 503 with Retry-After, never a crash;
links already in the Redis cache keep redirecting."""

import asyncio
import secrets
import shutil

import pytest
import redis
from starlette.testclient import TestClient

from shorty import embedded
from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from shorty.store import migrate
from tests.conftest import PUBLIC_URL, ROOT
from tests.helpers import bearer, query, user_with_key


@pytest.fixture
def doomed(stack):
    """A PostgreSQL server of its own (migrated), and a function that shuts it down."""
    server, admin_url = embedded.start_postgres(ROOT / ".shorty-data" / "test-down")
    url = asyncio.run(embedded.ensure_database(admin_url, f"shorty_{secrets.token_hex(4)}"))
    migrate.upgrade(url)
    yield url, server.cleanup  # pg_ctl stop: the server is gone, its socket too
    shutil.rmtree(ROOT / ".shorty-data" / "test-down", ignore_errors=True)


def settings_for(url, stack):
    redis.Redis.from_url(stack.redis_url).flushdb()
    return Settings(database_url=url, redis_url=stack.redis_url, public_url=PUBLIC_URL)


def test_api_answers_503_when_postgres_is_gone(doomed, stack):
    url, take_away = doomed
    _, key = user_with_key(url, "ada@example.com")
    with TestClient(create_api(settings_for(url, stack))) as client:
        body = {"target": "https://example.com"}
        assert client.post("/api/v1/shorten", json=body, headers=bearer(key)).status_code == 201
        take_away()
        response = client.post("/api/v1/shorten", json=body, headers=bearer(key))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["type"].endswith("/service-unavailable")
        assert client.get("/readyz").status_code == 503
        assert client.get("/livez").status_code == 200


def test_redirect_serves_cached_links_and_503_for_the_rest(doomed, stack):
    url, take_away = doomed
    query(url, "INSERT INTO urls (code, target) VALUES ('warm1', 'https://warm.example')")
    query(url, "INSERT INTO urls (code, target) VALUES ('cold1', 'https://cold.example')")
    with TestClient(create_redirect(settings_for(url, stack)), follow_redirects=False) as client:
        assert client.get("/warm1").status_code == 302  # now in Redis
        take_away()
        warm = client.get("/warm1")
        assert warm.status_code == 302
        assert warm.headers["location"] == "https://warm.example"
        cold = client.get("/cold1")
        assert cold.status_code == 503
        assert cold.headers["retry-after"] == "5"
        assert "Temporarily unavailable" in cold.text
