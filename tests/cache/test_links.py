"""The Redis link cache: generation checks keep a racing reader from restoring old data."""

import asyncio

import redis.asyncio as aredis

from shorty.cache.links import ABSENT, KEY, USES, CachedLink, LinkCache


def run(clean, scenario, ttl=300, negative_ttl=5):
    async def go():
        client = aredis.Redis.from_url(clean.redis_url)
        try:
            return await scenario(LinkCache(client, ttl, negative_ttl), client)
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
