"""Serve stale on error (issue #14, defect 2): with PostgreSQL unreachable, a link
whose cached copies are past their freshness keeps redirecting from the LRU or Redis,
while an uncached code answers 503 within the deadline; once PostgreSQL answers, the
next lookups read it again. A link that invalidation removed, or that PostgreSQL said
is gone, is never served stale.

The redirect service reaches the test PostgreSQL through ``tests.faults.Proxy`` and
the test pauses or cuts it (a hung or a crashed server); the API, when a test needs
one, reaches PostgreSQL directly (an outage between the redirect and PostgreSQL)."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.cache.links import INVALIDATIONS, KEY
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from tests.chaos.helpers import through
from tests.conftest import PUBLIC_URL
from tests.faults import Proxy
from tests.helpers import bearer, query, user_with_key, wait_for
from tests.redirect.helpers import add_link, lookups

DB_TIMEOUT = 1.0
MARGIN = 1.5  # a loaded two-core machine
LRU_TTL = 0.5
CACHE_TTL = 1  # the smallest the setting takes
PAST_FRESHNESS = CACHE_TTL + 0.3  # both copies are stale after this
# Which tiers hold the copy: each alone, and both (the default setup).
TIERS = {
    "lru": {"cache_ttl": 0},  # no Redis tier
    "redis": {"lru_size": 0},  # no LRU
    "both": {},
}


def stale_served(tier: str) -> float:
    return REGISTRY.get_sample_value("shorty_redirect_stale_total", {"tier": tier}) or 0


def redirect_settings(clean, proxy: Proxy, **extra) -> Settings:
    values = {"lru_ttl": LRU_TTL, "cache_ttl": CACHE_TTL, **extra}
    return Settings(
        database_url=through(proxy, clean.database_url),
        redis_url=clean.redis_url,
        public_url=PUBLIC_URL,
        db_timeout=DB_TIMEOUT,
        db_acquire_timeout=DB_TIMEOUT,
        db_pool_max=2,
        **values,
    )


def subscribed(clean) -> None:
    """Wait for the redirect's invalidation subscription: a replica that subscribes
    late (it serves without it after 2 x SHORTY_REDIS_TIMEOUT) clears its LRU then,
    which would drop the copies a test has just warmed."""
    plain = redis.Redis.from_url(clean.redis_url)
    try:
        wait_for(lambda: dict(plain.pubsub_numsub(INVALIDATIONS))[INVALIDATIONS.encode()], 10)
    finally:
        plain.close()


def timed_get(client: TestClient, path: str):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


@pytest.mark.parametrize("fault", ["pause", "cut"])
@pytest.mark.parametrize("tiers", sorted(TIERS))
def test_a_hot_link_keeps_redirecting_while_postgres_is_away(
    tiers, fault, clean, postgres_proxy, caplog
):
    caplog.set_level(logging.INFO, logger="shorty.redirect.outage")
    add_link(clean.database_url, "hot1", "https://hot.example/a")
    add_link(clean.database_url, "cold1", "https://cold.example/")
    settings = redirect_settings(clean, postgres_proxy, **TIERS[tiers])
    stale_before = stale_served("lru") + stale_served("redis")
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        subscribed(clean)
        assert client.get("/hot1").headers["location"] == "https://hot.example/a"
        time.sleep(PAST_FRESHNESS)  # every copy of hot1 is now past its freshness
        getattr(postgres_proxy, fault)()
        try:
            waits = []
            for _ in range(20):
                hot, elapsed = timed_get(client, "/hot1")
                assert hot.status_code == 302, hot.text
                assert hot.headers["location"] == "https://hot.example/a"
                assert elapsed < DB_TIMEOUT + MARGIN, f"answered after {elapsed:.1f} s"
                waits.append(elapsed)
            cold, cold_wait = timed_get(client, "/cold1")
            assert cold.status_code == 503
            assert cold.headers["retry-after"] == "5"
            assert cold_wait < DB_TIMEOUT + MARGIN, f"answered after {cold_wait:.1f} s"
            # Changed in PostgreSQL meanwhile, without an invalidation: only a fresh
            # lookup can see it.
            query(
                clean.database_url,
                "UPDATE urls SET target = 'https://hot.example/b' WHERE code = 'hot1'",
            )
            assert client.get("/hot1").headers["location"] == "https://hot.example/a"
        finally:
            postgres_proxy.restore()
        served = stale_served("lru") + stale_served("redis") - stale_before
        assert served >= 21
        pg_before = lookups("postgres", "hit")
        back = time.monotonic()
        # Back: the next lookups ask PostgreSQL again (at most a second later).
        wait_for(
            lambda: client.get("/hot1").headers["location"] == "https://hot.example/b",
            DB_TIMEOUT + 5,
            "a fresh lookup of hot1",
            every=0.02,
        )
        fresh_after = time.monotonic() - back
        assert lookups("postgres", "hit") > pg_before
        assert client.get("/cold1").status_code == 302
    first, rest = waits[0], sorted(waits[1:])
    print(
        f"\n[{tiers}, postgres {fault}] stale redirects: the first {first * 1000:.0f} ms"
        f" (it asked PostgreSQL), the next 19: median {rest[9] * 1000:.1f} ms,"
        f" max {rest[-1] * 1000:.0f} ms;"
        f" uncached 503 in {cold_wait * 1000:.0f} ms; fresh lookup {fresh_after:.2f} s after"
        " PostgreSQL came back"
    )
    # One line when the outage starts, one when it ends: not one per request.
    lines = [r.getMessage() for r in caplog.records if r.name == "shorty.redirect.outage"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("PostgreSQL unavailable (")
    assert lines[1].startswith("PostgreSQL answers again after ")
    total = stale_served("lru") + stale_served("redis") - stale_before
    assert lines[1].endswith(f"; {int(total)} lookups were served stale meanwhile"), lines


def test_without_stale_ttl_a_link_past_its_freshness_answers_503(clean, postgres_proxy):
    add_link(clean.database_url, "hot2")
    settings = redirect_settings(clean, postgres_proxy, stale_ttl=0)
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        subscribed(clean)
        assert client.get("/hot2").status_code == 302
        time.sleep(PAST_FRESHNESS)
        postgres_proxy.cut()
        try:
            assert client.get("/hot2").status_code == 503
        finally:
            postgres_proxy.restore()


def test_a_stale_copy_outlives_its_freshness_only_by_stale_ttl(clean, postgres_proxy):
    add_link(clean.database_url, "hot3")
    settings = redirect_settings(clean, postgres_proxy, stale_ttl=1)
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        subscribed(clean)
        assert client.get("/hot3").status_code == 302
        time.sleep(PAST_FRESHNESS)
        postgres_proxy.cut()
        try:
            assert client.get("/hot3").status_code == 302  # within the stale second
            time.sleep(1.2)  # past it, in the LRU and in Redis (the key expired)
            assert client.get("/hot3").status_code == 503
        finally:
            postgres_proxy.restore()


@pytest.mark.parametrize("tiers", sorted(TIERS))
def test_a_link_deleted_during_the_outage_is_not_served_stale(tiers, clean, postgres_proxy):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    api_settings = Settings(
        database_url=clean.database_url, redis_url=clean.redis_url, public_url=PUBLIC_URL
    )
    settings = redirect_settings(clean, postgres_proxy, **TIERS[tiers])
    with (
        TestClient(create_api(api_settings)) as api,
        TestClient(create_redirect(settings), follow_redirects=False) as client,
    ):
        subscribed(clean)
        for alias in ("doomed", "kept"):
            body = {"target": f"https://{alias}.example/", "alias": alias}
            assert api.post("/api/v1/shorten", json=body, headers=bearer(key)).status_code == 201
            assert client.get(f"/{alias}").status_code == 302
        time.sleep(PAST_FRESHNESS)
        postgres_proxy.pause()  # the redirect's PostgreSQL only: the API still writes
        try:
            assert client.get("/doomed").status_code == 302  # served stale
            assert api.delete("/api/v1/urls/doomed", headers=bearer(key)).status_code == 204
            redis = client.app_state["deps"].redis
            assert client.portal.call(redis.exists, KEY.format("doomed")) == 0
            # The replica hears of it within a second; from then on, never the old link.
            wait_for(lambda: client.get("/doomed").status_code == 503, 2, "the invalidation")
            for _ in range(3):
                assert client.get("/doomed").status_code == 503
            assert client.get("/kept").status_code == 302  # the others still redirect
        finally:
            postgres_proxy.resume()
        wait_for(lambda: client.get("/doomed").status_code == 404, DB_TIMEOUT + 5, "404")


def test_a_link_postgres_said_is_gone_is_not_served_stale_later(clean, postgres_proxy):
    add_link(clean.database_url, "removed")
    settings = redirect_settings(clean, postgres_proxy, negative_ttl=0.2)
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        subscribed(clean)
        assert client.get("/removed").status_code == 302
        # Deleted behind the caches' back (no invalidation): the next fresh lookup
        # learns it, and must drop the copies it holds, stale ones included.
        query(clean.database_url, "DELETE FROM urls WHERE code = 'removed'")
        time.sleep(PAST_FRESHNESS)
        assert client.get("/removed").status_code == 404
        time.sleep(0.3)  # the remembered miss is gone too
        postgres_proxy.cut()
        try:
            assert client.get("/removed").status_code == 503
        finally:
            postgres_proxy.restore()


def test_with_both_stores_away_the_lru_serves_stale(clean, postgres_proxy, redis_proxy):
    add_link(clean.database_url, "hot4")
    settings = redirect_settings(clean, postgres_proxy, redis_timeout=0.3)
    settings = Settings(
        **{**settings.model_dump(), "redis_url": through(redis_proxy, clean.redis_url)}
    )
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        subscribed(clean)
        assert client.get("/hot4").status_code == 302
        time.sleep(PAST_FRESHNESS)
        redis_proxy.cut()
        postgres_proxy.pause()
        try:
            for _ in range(5):
                hot, elapsed = timed_get(client, "/hot4")
                assert hot.status_code == 302
                assert elapsed < 0.3 + DB_TIMEOUT + MARGIN, f"after {elapsed:.1f} s"
        finally:
            postgres_proxy.resume()
            redis_proxy.restore()
