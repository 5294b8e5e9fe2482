"""The Redis link cache: generation checks keep a racing reader from restoring old data."""

import asyncio
import time

import redis.asyncio as aredis

from shorty.cache.links import (
    ABSENT,
    KEY,
    PREVIOUS_KEY,
    USES,
    CachedLink,
    LinkCache,
    Stale,
    decode,
    encode,
)


def run(clean, scenario, ttl=300, negative_ttl=5, stale_ttl=0):
    async def go():
        client = aredis.Redis.from_url(clean.redis_url)
        try:
            return await scenario(LinkCache(client, ttl, negative_ttl, stale_ttl), client)
        finally:
            await client.aclose()

    return asyncio.run(go())


LINK = CachedLink(7, "https://example.com", 301, 1900000000.0, False, 10, True)


def test_round_trip_and_absent(clean):
    async def scenario(cache, client):
        generation = await cache.generation("abc")
        assert await cache.put("abc", LINK, generation)
        assert await cache.put("zzz", ABSENT, generation)
        return await cache.get("abc"), await cache.get("zzz"), await client.pttl(KEY.format("zzz"))

    link, absent, absent_ttl = run(clean, scenario)
    assert link == LINK
    assert absent is ABSENT
    assert 0 < absent_ttl <= 5000


def test_a_reader_that_raced_an_invalidation_does_not_write(clean):
    async def scenario(cache, client):
        cached = await cache.get("raced")  # reader: nothing cached,
        generation = await cache.generation("raced")  # so it notes the generation
        await cache.invalidate("raced")  # meanwhile: the API deletes the link
        written = await cache.put("raced", LINK, generation)  # reader: writes what it read
        return cached, written, await client.exists(KEY.format("raced"))

    assert run(clean, scenario) == (None, False, 0)


def test_invalidate_drops_entry_and_use_counter_and_announces(clean):
    async def scenario(cache, client):
        generation = await cache.generation("gone")
        await cache.put("gone", LINK, generation)
        await client.set(USES.format("gone"), 3)
        async with client.pubsub() as pubsub:
            await pubsub.subscribe("shorty:invalidate")
            await pubsub.get_message(timeout=1)  # the subscribe confirmation
            await cache.invalidate("gone")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
        return (
            await client.exists(KEY.format("gone"), USES.format("gone")),
            message["data"],
            await cache.generation("gone"),
        )

    exists, announced, generation = run(clean, scenario)
    assert exists == 0
    assert announced == b"gone"
    assert generation == b"1"


def test_zero_ttl_disables_writes(clean):
    async def scenario(cache, client):
        return cache.enabled, await cache.put("abc", LINK, b""), await client.dbsize()

    assert run(clean, scenario, ttl=0) == (False, False, 0)


def test_a_value_that_is_not_ours_is_a_miss(clean):
    async def scenario(cache, client):
        await client.set(KEY.format("old"), b'["https://example.com", 302, null, false]')
        await client.set(KEY.format("junk"), b"{not json")
        return await cache.get("old"), await cache.get("junk")

    assert run(clean, scenario) == (None, None)


def test_an_entry_past_its_freshness_is_read_as_stale(clean):
    async def scenario(cache, client):
        await client.set(KEY.format("fresh"), encode(LINK, time.time() + 60))
        await client.set(KEY.format("stale"), encode(LINK, time.time() - 1))
        return await cache.get("fresh"), await cache.get("stale")

    assert run(clean, scenario, stale_ttl=3600) == (LINK, Stale(LINK))
    assert run(clean, scenario, stale_ttl=0) == (LINK, None)  # 0: no stale copies


def test_a_link_entry_lives_its_ttl_plus_stale_ttl_and_says_until_when_it_is_fresh(clean):
    async def scenario(cache, client):
        before = time.time()
        assert await cache.put("abc", LINK, await cache.generation("abc"))
        raw = await client.get(KEY.format("abc"))
        return before, decode(raw), await client.pttl(KEY.format("abc"))

    before, (fresh_until, link), life_ms = run(clean, scenario, ttl=300, stale_ttl=3600)
    assert link == LINK
    assert before + 300 <= fresh_until + 0.001 <= time.time() + 300 + 0.001
    assert 3_600_000 < life_ms <= 3_900_000


def test_invalidate_drops_the_previous_layouts_entry_too(clean):
    async def scenario(cache, client):
        await client.set(PREVIOUS_KEY.format("moved"), b'[1, "https://old.example"]')
        await cache.invalidate("moved")
        return await client.exists(PREVIOUS_KEY.format("moved"))

    assert run(clean, scenario) == 0
