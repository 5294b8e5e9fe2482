"""Readiness under real faults (issue #14, defect 4): `/readyz` says "send me traffic"
while the service can serve, answers within its deadline while a dependency hangs,
and the API stops paying the Redis timeout on every call once Redis failed.

The faults are real: a loopback proxy (``tests.faults.Proxy``) in front of the
test's PostgreSQL or Redis (both listen on Unix sockets) that the test cuts or
pauses while the services run."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from tests.chaos.helpers import APPS, READY_TIMEOUT, settings_for, through
from tests.helpers import bearer, user_with_key


def timed_readyz(client: TestClient) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/readyz")
    return response.status_code, response.json(), time.monotonic() - started


@pytest.mark.parametrize("kind", sorted(APPS))
def test_with_redis_cut_both_services_stay_ready_and_say_redis_is_down(kind, clean, redis_proxy):
    settings = settings_for(clean, redis_url=through(redis_proxy, clean.redis_url))
    with TestClient(APPS[kind](settings)) as client:
        status, body, _ = timed_readyz(client)
        assert (status, body["checks"]) == (200, {"postgres": "up", "redis": "up"})
        redis_proxy.cut()
        status, body, elapsed = timed_readyz(client)
        assert status == 200, body
        assert body["status"] == "ready"
        assert body["checks"] == {"postgres": "up", "redis": "down"}
        assert elapsed < READY_TIMEOUT + 1.0
        redis_proxy.restore()
        status, body, _ = timed_readyz(client)
        assert (status, body["checks"]) == (200, {"postgres": "up", "redis": "up"})


def test_with_postgres_paused_the_api_is_unready_within_its_deadline(clean, postgres_proxy):
    settings = settings_for(
        clean, database_url=through(postgres_proxy, clean.database_url), db_pool_max=2
    )
    with TestClient(create_api(settings)) as client:
        assert timed_readyz(client)[0] == 200
        postgres_proxy.pause()
        try:
            # More probes than the pool has connections: a probe that timed out
            # must not keep one.
            for _ in range(3):
                status, body, elapsed = timed_readyz(client)
                assert status == 503, body
                assert body["status"] == "unavailable"
                assert body["checks"] == {"postgres": "down", "redis": "up"}
                assert elapsed < READY_TIMEOUT + 1.0
        finally:
            postgres_proxy.resume()
        status, body, _ = timed_readyz(client)
        assert (status, body["checks"]) == (200, {"postgres": "up", "redis": "up"})


def test_with_postgres_paused_the_redirect_stays_ready_while_redis_answers(clean, postgres_proxy):
    settings = settings_for(
        clean, database_url=through(postgres_proxy, clean.database_url), db_pool_max=2
    )
    with TestClient(create_redirect(settings)) as client:
        assert timed_readyz(client)[0] == 200
        postgres_proxy.pause()
        try:
            for _ in range(3):
                status, body, elapsed = timed_readyz(client)
                assert status == 200, body
                assert body["status"] == "ready"
                assert body["checks"] == {"postgres": "down", "redis": "up"}
                assert elapsed < READY_TIMEOUT + 1.0
        finally:
            postgres_proxy.resume()


def test_with_redis_paused_api_writes_pay_the_redis_timeout_once(clean, redis_proxy):
    writes = 8
    settings = settings_for(
        clean, redis_url=through(redis_proxy, clean.redis_url), redis_backoff=60
    )
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_api(settings)) as client:
        body = {"target": "https://example.com/warm"}
        assert client.post("/api/v1/shorten", json=body, headers=bearer(key)).status_code == 201
        redis_proxy.pause()
        try:
            started = time.monotonic()
            for n in range(writes):
                body = {"target": f"https://example.com/{n}"}
                response = client.post("/api/v1/shorten", json=body, headers=bearer(key))
                assert response.status_code == 201, response.text
            elapsed = time.monotonic() - started
        finally:
            redis_proxy.resume()
    # Before: each write waited for the rate limiter and the cache invalidation
    # (2 x 0.3 s, 4.8 s for 8 writes). Now the first failure skips Redis for the rest.
    assert elapsed < settings.redis_timeout * 2 + 1.5, elapsed


def test_with_both_stores_away_the_redirect_is_unready(clean, postgres_proxy, redis_proxy):
    settings = settings_for(
        clean,
        database_url=through(postgres_proxy, clean.database_url),
        redis_url=through(redis_proxy, clean.redis_url),
    )
    with TestClient(create_redirect(settings)) as client:
        assert timed_readyz(client)[0] == 200
        redis_proxy.cut()
        postgres_proxy.pause()
        try:
            status, body, elapsed = timed_readyz(client)
        finally:
            postgres_proxy.resume()
        assert status == 503, body
        assert body["status"] == "unavailable"
        assert body["checks"] == {"postgres": "down", "redis": "down"}
        assert body["errors"]["postgres"] == "TimeoutError"
        assert elapsed < READY_TIMEOUT + 1.0
