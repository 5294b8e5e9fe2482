"""Recovery from both stores down (issue #14, matrix row "recovery"): the links the
redirect served from its LRU during the outage keep redirecting while the stores
come back.

Found by tests/chaos/test_matrix.py (both-down, cut): hot links answered 302 all
through the outage, then 503 for about 1.5 s after the restore. When Redis came
back, the invalidation subscription was made again and, as it must (invalidations
were missed), cleared the LRU; the lookups then skipped Redis, whose breaker was
still cooling down though the subscription had just shown it answers, and met
PostgreSQL's open breaker: 503 for links Redis held fresh copies of."""

from __future__ import annotations

import time

import redis
from starlette.testclient import TestClient

from shorty.cache.links import INVALIDATIONS
from shorty.redirect.app import create_app as create_redirect
from tests.chaos.helpers import settings_for, through
from tests.helpers import wait_for
from tests.redirect.helpers import add_link

COOLDOWN = 30.0  # both breakers: far longer than the test, so neither probes by itself


def subscribers(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(dict(client.pubsub_numsub(INVALIDATIONS))[INVALIDATIONS.encode()])
    finally:
        client.close()


def test_lru_links_keep_redirecting_when_redis_comes_back_before_postgres(
    clean, postgres_proxy, redis_proxy
):
    add_link(clean.database_url, "hot1", "https://hot.example/")
    add_link(clean.database_url, "cold1", "https://cold.example/")
    settings = settings_for(
        clean,
        database_url=through(postgres_proxy, clean.database_url),
        redis_url=through(redis_proxy, clean.redis_url),
        db_timeout=1.0,
        db_breaker_threshold=1,
        db_breaker_cooldown=COOLDOWN,
        redis_backoff=COOLDOWN,
    )
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        wait_for(lambda: subscribers(clean.redis_url) == 1, 10, "the invalidation subscription")
        assert client.get("/hot1").status_code == 302  # in the LRU now, and in Redis
        redis_proxy.cut()
        postgres_proxy.cut()
        # An uncached code meets both: each breaker opens.
        assert client.get("/cold1").status_code == 503
        assert client.get("/readyz").json()["breakers"] == {"postgres": "open", "redis": "open"}
        assert client.get("/hot1").status_code == 302  # the LRU serves it
        redis_proxy.restore()  # Redis is back first; PostgreSQL is still away
        wait_for(lambda: subscribers(clean.redis_url) == 1, 10, "the subscription again")
        # The subscriber clears the LRU right after its SUBSCRIBE is sent: let it run.
        time.sleep(0.3)
        try:
            answers = [client.get("/hot1") for _ in range(5)]
            assert [a.status_code for a in answers] == [302] * 5, answers[0].text
            assert answers[0].headers["location"] == "https://hot.example/"
            # What Redis does not hold still needs PostgreSQL, whose breaker is open.
            assert client.get("/cold1").status_code == 503
        finally:
            postgres_proxy.restore()
