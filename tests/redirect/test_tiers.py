"""The lookup tiers: process LRU, Redis, PostgreSQL; negative caching; invalidation."""

import time

from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.bootstrap import DEPS
from shorty.cache.links import KEY, decode
from shorty.redirect.app import create_app
from tests.helpers import bearer, query, user_with_key, wait_for
from tests.redirect.helpers import add_link, lookups


def redirect_client(settings, **changes):
    return TestClient(create_app(settings.model_copy(update=changes)), follow_redirects=False)


def test_tiers_answer_in_order(settings, clean):
    add_link(clean.database_url, "tiered")
    before = {t: lookups(t, "hit") for t in ("lru", "redis", "postgres")}
    with redirect_client(settings) as first, redirect_client(settings) as second:
        assert first.get("/tiered").status_code == 302  # PostgreSQL, then cached
        assert first.get("/tiered").status_code == 302  # LRU
        assert second.get("/tiered").status_code == 302  # second replica: Redis
    after = {t: lookups(t, "hit") - before[t] for t in before}
    assert after == {"lru": 1, "redis": 1, "postgres": 1}


def test_redis_tier_serves_until_invalidated(settings, clean, cache):
    add_link(clean.database_url, "cached1")
    with redirect_client(settings, lru_size=0) as client:
        assert client.get("/cached1").status_code == 302
        assert decode(cache.get(KEY.format("cached1")))[1].target == "https://example.com/landing"
        query(
            clean.database_url,
            "UPDATE urls SET target = 'https://changed.example' WHERE code = 'cached1'",
        )
        assert client.get("/cached1").headers["location"] == "https://example.com/landing"
        cache.delete(KEY.format("cached1"))
        assert client.get("/cached1").headers["location"] == "https://changed.example"


def test_postgres_tier_alone(settings, clean, cache):
    add_link(clean.database_url, "pgonly")
    before = lookups("postgres", "hit")
    with redirect_client(settings, lru_size=0, cache_ttl=0) as client:
        for _ in range(3):
            assert client.get("/pgonly").status_code == 302
    assert lookups("postgres", "hit") - before == 3
    assert cache.exists(KEY.format("pgonly")) == 0


def test_misses_are_cached_so_postgres_sees_a_code_once(settings, clean, cache):
    before = lookups("postgres", "absent")
    with redirect_client(settings) as first, redirect_client(settings) as second:
        for client in (first, first, second, second):
            assert client.get("/missing1").status_code == 404
    assert lookups("postgres", "absent") - before == 1
    assert cache.get(KEY.format("missing1")) == b"-"
    ttl_ms = cache.pttl(KEY.format("missing1"))
    assert 0 < ttl_ms <= 5000


def test_negative_entry_expires(settings, clean):
    before = lookups("postgres", "absent")
    with redirect_client(settings, negative_ttl=0.2) as client:
        assert client.get("/missing2").status_code == 404
        time.sleep(0.3)
        assert client.get("/missing2").status_code == 404
    assert lookups("postgres", "absent") - before == 2


def test_api_changes_reach_every_replica_within_a_second(settings, clean):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with (
        TestClient(create_api(settings)) as api,
        redirect_client(settings) as first,
        redirect_client(settings) as second,
    ):
        created = api.post(
            "/api/v1/shorten",
            json={"target": "https://one.example", "alias": "moving"},
            headers=bearer(key),
        )
        assert created.status_code == 201
        for replica in (first, second):
            assert replica.get("/moving").headers["location"] == "https://one.example"
            assert replica.get("/moving").status_code == 302  # now in each LRU
        assert api.delete("/api/v1/urls/moving", headers=bearer(key)).status_code == 204
        for replica in (first, second):
            assert wait_for(lambda r=replica: r.get("/moving").status_code == 404, 1.0, every=0.02)


def test_creating_a_code_clears_its_cached_miss(settings, clean):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with (
        TestClient(create_api(settings)) as api,
        redirect_client(settings, negative_ttl=60) as replica,
    ):
        assert replica.get("/latecomer").status_code == 404  # remembered as unknown for 60 s
        api.post(
            "/api/v1/shorten",
            json={"target": "https://late.example", "alias": "latecomer"},
            headers=bearer(key),
        )
        assert wait_for(lambda: replica.get("/latecomer").status_code == 302, 1.0, every=0.02)


def test_lookup_overlapping_an_invalidation_is_not_remembered(settings, clean):
    add_link(clean.database_url, "overlap")
    with redirect_client(settings, cache_ttl=0) as client:
        resolver = client.app_state[DEPS].resolver
        original = resolver._from_postgres

        async def read_then_invalidated(code):
            link = await original(code)
            resolver.forget(code)  # an invalidation arrives while PostgreSQL answers
            return link

        resolver._from_postgres = read_then_invalidated
        before = lookups("postgres", "hit")
        assert client.get("/overlap").status_code == 302
        resolver._from_postgres = original
        assert client.get("/overlap").status_code == 302
    assert lookups("postgres", "hit") - before == 2  # the first answer was not kept in the LRU


def test_concurrent_lookups_of_one_code_share_one_query(settings, clean):
    before = lookups("postgres", "absent")
    with redirect_client(settings, lru_size=0, cache_ttl=0) as client:
        resolver = client.app_state[DEPS].resolver

        async def fifty():
            import asyncio

            return await asyncio.gather(*(resolver.resolve("nothere") for _ in range(50)))

        assert client.portal.call(fifty) == [None] * 50
    assert lookups("postgres", "absent") - before == 1


def test_invalidating_another_code_does_not_spoil_a_lookup(settings, clean):
    add_link(clean.database_url, "mine")
    with redirect_client(settings, cache_ttl=0) as client:
        resolver = client.app_state[DEPS].resolver
        original = resolver._from_postgres

        async def read_while_another_changes(code):
            link = await original(code)
            resolver.forget("someone-else")
            return link

        resolver._from_postgres = read_while_another_changes
        before = lookups("lru", "hit")
        assert client.get("/mine").status_code == 302
        resolver._from_postgres = original
        assert client.get("/mine").status_code == 302
    assert lookups("lru", "hit") - before == 1  # remembered despite the other code's change


def test_a_slow_redis_is_skipped_not_waited_for(settings, clean):
    import threading
    import time as clock

    import redis as sync_redis

    add_link(clean.database_url, "patient")
    add_link(clean.database_url, "second")
    quick = settings.model_copy(update={"redis_timeout": 0.2, "redis_backoff": 5})
    with redirect_client(quick) as client:
        sleeper = sync_redis.Redis.from_url(clean.redis_url)
        stall = threading.Thread(target=lambda: sleeper.execute_command("DEBUG", "SLEEP", "1.5"))
        stall.start()
        clock.sleep(0.1)
        started = clock.monotonic()
        assert client.get("/patient").status_code == 302  # Redis times out, PostgreSQL answers
        first = clock.monotonic() - started
        started = clock.monotonic()
        assert client.get("/second").status_code == 302  # Redis skipped during the backoff
        second = clock.monotonic() - started
        stall.join()
        sleeper.close()
    assert first < 1.0  # not the 1.5 s Redis is asleep
    assert second < 0.15  # no wait at all
