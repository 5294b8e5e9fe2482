"""Recovery from both stores down (issue #14, matrix row "recovery"): the links the
redirect served from its LRU during the outage keep redirecting while the stores
come back.

Found by tests/chaos/test_matrix.py (both-down, cut): hot links answered 302 all
through the outage, then 503 for about 1.5 s after the restore. When Redis came
back, the invalidation subscription was made again and, as it must (invalidations
were missed), cleared the LRU; the lookups then skipped Redis, whose breaker was
still cooling down though the subscription had just shown it answers, and met
PostgreSQL's open breaker: 503 for links Redis held fresh copies of.

Then found by it again, on a busier machine (both-down, cut): 503 for 1.6 s after
the restore all the same, for links whose copy Redis no longer held fresh (its
TTL is shorter than a long test module) or that a first failed call skipped it
for. Clearing the LRU threw away copies that serve-stale would have served while
PostgreSQL was away; the subscription now only makes them stale
(``LinkResolver.distrust_all``)."""

from __future__ import annotations

import time

import redis
from starlette.testclient import TestClient

from shorty.cache.links import INVALIDATIONS, KEY
from shorty.redirect.app import create_app as create_redirect
from tests.chaos.helpers import settings_for, through
from tests.helpers import query, wait_for
from tests.redirect.helpers import add_link

COOLDOWN = 30.0  # both breakers: far longer than the test, so neither probes by itself


def subscribers(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(dict(client.pubsub_numsub(INVALIDATIONS))[INVALIDATIONS.encode()])
    finally:
        client.close()


def _outage_settings(clean, postgres_proxy, redis_proxy, db_cooldown=COOLDOWN):
    return settings_for(
        clean,
        database_url=through(postgres_proxy, clean.database_url),
        redis_url=through(redis_proxy, clean.redis_url),
        db_timeout=1.0,
        db_breaker_threshold=1,
        db_breaker_cooldown=db_cooldown,
        redis_backoff=COOLDOWN,
    )


def test_lru_links_keep_redirecting_when_redis_comes_back_before_postgres(
    clean, postgres_proxy, redis_proxy
):
    add_link(clean.database_url, "hot1", "https://hot.example/")
    add_link(clean.database_url, "cold1", "https://cold.example/")
    settings = _outage_settings(clean, postgres_proxy, redis_proxy)
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        try:
            _both_down_then_redis_back(client, clean, postgres_proxy, redis_proxy)
            answers = [client.get("/hot1") for _ in range(5)]
            assert [a.status_code for a in answers] == [302] * 5, answers[0].text
            assert answers[0].headers["location"] == "https://hot.example/"
            # What Redis does not hold still needs PostgreSQL, whose breaker is open.
            assert client.get("/cold1").status_code == 503
        finally:
            postgres_proxy.restore()


def _forget_in_redis(redis_url: str, code: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(KEY.format(code))
    finally:
        client.close()


def _both_down_then_redis_back(client, clean, postgres_proxy, redis_proxy) -> None:
    """hot1 in the LRU, both stores cut (both breakers open), then Redis back and
    subscribed again; PostgreSQL still away."""
    wait_for(lambda: subscribers(clean.redis_url) == 1, 10, "the invalidation subscription")
    assert client.get("/hot1").status_code == 302
    redis_proxy.cut()
    postgres_proxy.cut()
    # An uncached code meets both: each breaker opens.
    assert client.get("/cold1").status_code == 503
    assert client.get("/readyz").json()["breakers"] == {"postgres": "open", "redis": "open"}
    assert client.get("/hot1").status_code == 302  # the LRU serves it
    redis_proxy.restore()  # Redis is back first; PostgreSQL is still away
    wait_for(lambda: subscribers(clean.redis_url) == 1, 10, "the subscription again")
    time.sleep(0.3)  # the subscriber's reaction to its SUBSCRIBE


def test_lru_links_redis_no_longer_holds_are_served_stale_until_postgres_is_back(
    clean, postgres_proxy, redis_proxy
):
    add_link(clean.database_url, "hot1", "https://hot.example/")
    add_link(clean.database_url, "cold1", "https://cold.example/")
    settings = _outage_settings(clean, postgres_proxy, redis_proxy)
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        try:
            _both_down_then_redis_back(client, clean, postgres_proxy, redis_proxy)
            _forget_in_redis(clean.redis_url, "hot1")  # its Redis copy expired meanwhile
            answers = [client.get("/hot1") for _ in range(5)]
            assert [a.status_code for a in answers] == [302] * 5, answers[0].text
            assert answers[0].headers["location"] == "https://hot.example/"
        finally:
            postgres_proxy.restore()


def test_after_the_subscription_the_lru_copy_is_no_longer_fresh(clean, postgres_proxy, redis_proxy):
    """An invalidation missed while Redis was away: once PostgreSQL answers, the
    link is read from it, not from the LRU's copy."""
    add_link(clean.database_url, "hot1", "https://hot.example/")
    add_link(clean.database_url, "cold1", "https://cold.example/")
    # PostgreSQL's breaker probes again a second after it opened.
    settings = _outage_settings(clean, postgres_proxy, redis_proxy, db_cooldown=1.0)
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        try:
            _both_down_then_redis_back(client, clean, postgres_proxy, redis_proxy)
            # Changed meanwhile; its invalidation reached Redis but not this replica.
            query(
                clean.database_url,
                "UPDATE urls SET target = $1 WHERE code = 'hot1'",
                "https://changed.example/",
            )
            _forget_in_redis(clean.redis_url, "hot1")
        finally:
            postgres_proxy.restore()
        moved = wait_for(
            lambda: (
                (answer := client.get("/hot1")).headers.get("location")
                == "https://changed.example/"
                and answer
            ),
            10,
            "the link read from PostgreSQL",
        )
        assert moved.status_code == 302
