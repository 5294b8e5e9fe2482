"""Link events: outbox relay (order, one relay at a time, Redis outages) and cache updater."""

import asyncio
import json

import asyncpg
import pytest
import redis
import redis.asyncio as aredis
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.cache.links import GENERATION, INVALIDATIONS, KEY, LinkCache
from shorty.worker.events import (
    CACHE_GROUP,
    EVENTS,
    CacheUpdater,
    OutboxRelay,
    codes_of,
)
from shorty.worker.streams import DLQ
from tests.helpers import query, scalar, user_with_key

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def with_pool(stack, action, redis_url=None):
    async def go():
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
        client = aredis.Redis.from_url(redis_url or stack.redis_url, socket_timeout=2)
        try:
            return await action(pool, client)
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(go())


def test_a_change_through_the_api_is_published_with_its_trace(settings, clean):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_app(settings)) as api:
        created = api.post(
            "/api/v1/shorten",
            json={"target": "https://example.com/a", "alias": "traced"},
            headers={"Authorization": f"Bearer {key}", "traceparent": TRACE},
        )
    assert created.status_code == 201
    row = query(clean.database_url, "SELECT traceparent, published_at FROM outbox")[0]
    assert row["published_at"] is None
    assert row["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert row["traceparent"] != TRACE  # a span of its own in the caller's trace

    published = with_pool(clean, lambda pool, client: OutboxRelay(pool, client).step())
    assert published == 1
    assert scalar(clean.database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    ((_, fields),) = redis.Redis.from_url(clean.redis_url).xrange(EVENTS)
    assert fields[b"type"] == b"link.created"
    assert fields[b"key"] == b"traced"
    assert fields[b"traceparent"] == row["traceparent"].encode()
    assert json.loads(fields[b"payload"])["target"] == "https://example.com/a"
    assert with_pool(clean, lambda pool, client: OutboxRelay(pool, client).step()) == 0


def insert_events(url, codes):
    query(
        url,
        "INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload)"
        " SELECT 'link', c, 'link.updated', '{}'::jsonb FROM unnest($1::text[]) AS c",
        codes,
    )


def test_two_relays_publish_everything_once_and_in_order(clean):
    codes = [f"code{i:03d}" for i in range(300)]
    insert_events(clean.database_url, codes)

    async def race(pool, client):
        relays = [OutboxRelay(pool, client, batch=20) for _ in range(2)]

        async def drain(relay):
            for _ in range(200):
                await relay.step()
                if not await relay.waiting():
                    return

        await asyncio.gather(*(drain(relay) for relay in relays))

    with_pool(clean, race)
    entries = redis.Redis.from_url(clean.redis_url).xrange(EVENTS)
    assert [fields[b"key"].decode() for _, fields in entries] == codes
    ids = [int(fields[b"outbox_id"]) for _, fields in entries]
    assert ids == sorted(ids)


def test_events_wait_while_redis_is_away_and_leave_when_it_is_back(clean):
    insert_events(clean.database_url, ["waits"])

    async def relay_without_redis(pool, client):
        with pytest.raises((RedisConnectionError, OSError)):
            await OutboxRelay(pool, client).step()

    with_pool(clean, relay_without_redis, redis_url="redis://127.0.0.1:1")
    assert scalar(clean.database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL") == 1
    assert with_pool(clean, lambda pool, client: OutboxRelay(pool, client).step()) == 1
    assert redis.Redis.from_url(clean.redis_url).xlen(EVENTS) == 1


def test_the_cache_updater_drops_cached_links_and_tells_the_replicas(clean):
    plain = redis.Redis.from_url(clean.redis_url)
    plain.set(KEY.format("stale"), b'[1, "https://old.example", 302, null, false, null, false]')
    plain.set(GENERATION.format("stale"), b"4")
    listener = plain.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(INVALIDATIONS)
    insert_events(clean.database_url, ["stale"])

    async def apply(pool, client):
        await OutboxRelay(pool, client).step()
        updater = CacheUpdater(LinkCache(client, 300)).consumer(client, "w1")
        await updater.ensure_group()
        return await updater.step(block_ms=100)

    assert with_pool(clean, apply) == 1
    assert plain.get(KEY.format("stale")) is None
    assert plain.get(GENERATION.format("stale")) == b"5"
    message = None
    for _ in range(50):
        message = listener.get_message(timeout=0.1)
        if message:
            break
    assert message["data"] == b"stale"
    assert plain.xpending(EVENTS, CACHE_GROUP)["pending"] == 0
    listener.close()
    plain.close()


def test_events_the_updater_cannot_read_go_to_the_dead_letters(clean):
    plain = redis.Redis.from_url(clean.redis_url)
    plain.xadd(EVENTS, {"aggregate": "link", "key": "x", "payload": "{not json"})
    plain.xadd(EVENTS, {"aggregate": "user", "key": "7", "payload": "{}"})  # not ours: fine

    async def apply(pool, client):
        updater = CacheUpdater(LinkCache(client, 300)).consumer(client, "w1")
        await updater.ensure_group()
        return await updater.step(block_ms=100)

    assert with_pool(clean, apply) == 2
    (letter,) = plain.xrange(DLQ)
    assert letter[1][b"dlq:error"].startswith(b"not a link event")
    plain.close()


@pytest.mark.parametrize(
    ("fields", "codes"),
    [
        ({b"aggregate": b"link", b"key": b"abc", b"payload": b"{}"}, ["abc"]),
        ({b"key": b"abc"}, ["abc"]),
        ({b"aggregate": b"user", b"key": b"1"}, []),
    ],
)
def test_codes_of(fields, codes):
    assert codes_of(fields) == codes


@pytest.mark.parametrize(
    "fields",
    [{b"aggregate": b"link"}, {b"key": b"a", b"payload": b"[]"}, {b"key": b"", b"payload": b"{}"}],
)
def test_codes_of_refuses_damaged_events(fields):
    with pytest.raises(ValueError, match=r".+"):
        codes_of(fields)


def test_published_events_are_pruned_after_their_days(clean):
    insert_events(clean.database_url, ["old", "new", "unsent"])
    query(
        clean.database_url,
        "UPDATE outbox SET published_at = now() - interval '9 days' WHERE aggregate_id = 'old'",
    )
    query(clean.database_url, "UPDATE outbox SET published_at = now() WHERE aggregate_id = 'new'")
    assert with_pool(clean, lambda pool, client: OutboxRelay(pool, client).prune(7)) == 1
    left = query(clean.database_url, "SELECT aggregate_id FROM outbox ORDER BY id")
    assert [r[0] for r in left] == ["new", "unsent"]


def test_the_backlog_says_how_many_events_wait_and_how_long_the_oldest_has(clean):
    """What shorty_outbox_unpublished and shorty_outbox_oldest_age_seconds show."""

    async def backlog(pool, client):
        return await OutboxRelay(pool, client).backlog()

    empty = with_pool(clean, backlog)
    assert (empty.events, empty.oldest_age) == (0, 0.0)
    insert_events(clean.database_url, ["older", "newer"])
    query(
        clean.database_url,
        "UPDATE outbox SET created_at = now() - interval '1 hour' WHERE aggregate_id = 'older'",
    )
    waiting = with_pool(clean, backlog)
    assert waiting.events == 2
    assert 3600 <= waiting.oldest_age < 3660
    with_pool(clean, lambda pool, client: OutboxRelay(pool, client).step())
    published = with_pool(clean, backlog)
    assert (published.events, published.oldest_age) == (0, 0.0)
