import asyncio

import asyncpg
import pytest
import redis
import redis.asyncio as aredis

from shorty.redirect.clicks import STREAM
from shorty.worker.ingest import GROUP, ClickIngester, parse_entry
from shorty.worker.main import run_worker
from tests.helpers import query, scalar


def add_link(url, code):
    query(url, "INSERT INTO urls (code, target) VALUES ($1, 'https://example.com')", code)


def add_clicks(redis_url, code, n, **extra):
    client = redis.Redis.from_url(redis_url)
    ids = [
        client.xadd(
            STREAM,
            {
                "code": code,
                "ts": "1767225600000",
                "ref": "ref.example",
                "ua": "UA/1",
                "vh": "0123abcd",
                **extra,
            },
        )
        for _ in range(n)
    ]
    client.close()
    return ids


def with_ingester(stack, action, consumer="test-1", **options):
    async def go():
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        client = aredis.Redis.from_url(stack.redis_url)
        try:
            ingester = ClickIngester(pool, client, consumer, **options)
            await ingester.ensure_group()
            return await action(ingester, client)
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(go())


def test_batch_is_stored_counted_and_acknowledged(clean):
    add_link(clean.database_url, "counted")
    add_link(clean.database_url, "other")

    async def first_batch(ingester, client):
        return await ingester.step(block_ms=100)

    with_ingester(clean, lambda i, c: i.ensure_group())  # group exists before the clicks
    add_clicks(clean.redis_url, "counted", 3)
    add_clicks(clean.redis_url, "other", 1)
    assert with_ingester(clean, first_batch) == 4
    assert scalar(clean.database_url, "SELECT click_count FROM urls WHERE code = 'counted'") == 3
    rows = query(
        clean.database_url,
        "SELECT referrer_host, user_agent, occurred_at, visitor_hash, is_bot FROM clicks",
    )
    assert len(rows) == 4
    assert {(r["referrer_host"], r["user_agent"]) for r in rows} == {("ref.example", "UA/1")}
    assert {(r["visitor_hash"], r["is_bot"]) for r in rows} == {("0123abcd", False)}
    assert rows[0]["occurred_at"].isoformat() == "2026-01-01T00:00:00+00:00"
    pending = redis.Redis.from_url(clean.redis_url).xpending(STREAM, GROUP)
    assert pending["pending"] == 0


def test_redelivered_entries_are_counted_once(clean):
    add_link(clean.database_url, "once")
    with_ingester(clean, lambda i, c: i.ensure_group())
    add_clicks(clean.redis_url, "once", 2)

    async def twice(ingester, client):
        entries = await client.xrange(STREAM)
        return await ingester.ingest(entries), await ingester.ingest(entries)

    assert with_ingester(clean, twice) == (2, 0)
    assert scalar(clean.database_url, "SELECT click_count FROM urls WHERE code = 'once'") == 2
    assert scalar(clean.database_url, "SELECT count(*) FROM clicks") == 2


def test_pending_entries_of_a_dead_consumer_are_claimed(clean):
    add_link(clean.database_url, "orphan")
    with_ingester(clean, lambda i, c: i.ensure_group())
    add_clicks(clean.redis_url, "orphan", 2)
    dead = redis.Redis.from_url(clean.redis_url)
    assert (
        len(dead.xreadgroup(GROUP, "dead-consumer", {STREAM: ">"})[0][1]) == 2
    )  # read, never acked
    dead.close()

    async def step(ingester, client):
        return await ingester.step(block_ms=100)

    assert with_ingester(clean, step, consumer="alive", claim_idle_ms=0) == 2
    assert scalar(clean.database_url, "SELECT click_count FROM urls WHERE code = 'orphan'") == 2


def test_malformed_and_unknown_entries_are_dropped_and_acknowledged(clean):
    add_link(clean.database_url, "real")
    with_ingester(clean, lambda i, c: i.ensure_group())
    client = redis.Redis.from_url(clean.redis_url)
    client.xadd(STREAM, {"garbage": "1"})
    client.xadd(STREAM, {"code": "real", "ts": "not-a-number"})
    client.close()
    add_clicks(clean.redis_url, "deleted-link", 1)
    add_clicks(clean.redis_url, "real", 1)

    async def step(ingester, c):
        return await ingester.step(block_ms=100)

    assert with_ingester(clean, step) == 1
    assert redis.Redis.from_url(clean.redis_url).xpending(STREAM, GROUP)["pending"] == 0


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({b"code": b"abc", b"ts": b"1767225600000"}, True),
        ({b"code": b"abc"}, False),
        ({b"ts": b"1"}, False),
        ({b"code": b"abc", b"ts": b"99999999999999999999"}, False),
    ],
)
def test_parse_entry(fields, ok):
    assert (parse_entry(b"1-0", fields) is not None) is ok


def test_worker_process_loop_ingests_until_stopped(settings, clean):
    add_link(clean.database_url, "looped")

    async def scenario():
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop))
        client = aredis.Redis.from_url(clean.redis_url)
        try:
            await client.xadd(STREAM, {"code": "looped", "ts": "1767225600000"})
            for _ in range(100):  # bounded wait: up to 10 s
                pool_count = await asyncio.to_thread(
                    scalar, clean.database_url, "SELECT click_count FROM urls WHERE code = 'looped'"
                )
                if pool_count == 1:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await client.aclose()
        await asyncio.wait_for(worker, 5)
        check = aredis.Redis.from_url(clean.redis_url)
        consumers = await check.xinfo_consumers(STREAM, GROUP)
        await check.aclose()
        return pool_count, consumers

    counted, consumers = asyncio.run(scenario())
    assert counted == 1
    assert consumers == []  # a worker that stops cleanly leaves the group


def test_a_click_refused_by_postgresql_does_not_stall_the_batch(clean):
    add_link(clean.database_url, "poisoned")
    query(
        clean.database_url,
        """
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.user_agent = 'poison' THEN RAISE EXCEPTION 'refused on purpose'; END IF;
            RETURN NEW;
        END $$
        """,
    )
    query(
        clean.database_url,
        "CREATE TRIGGER refuse BEFORE INSERT ON clicks"
        " FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )
    try:
        with_ingester(clean, lambda i, c: i.ensure_group())
        add_clicks(clean.redis_url, "poisoned", 2)
        add_clicks(clean.redis_url, "poisoned", 1, ua="poison")
        add_clicks(clean.redis_url, "poisoned", 1)

        async def step(ingester, client):
            return await ingester.step(block_ms=100)

        assert with_ingester(clean, step) == 3
        assert (
            scalar(clean.database_url, "SELECT click_count FROM urls WHERE code = 'poisoned'") == 3
        )
        assert redis.Redis.from_url(clean.redis_url).xpending(STREAM, GROUP)["pending"] == 0
    finally:
        query(clean.database_url, "DROP TRIGGER refuse ON clicks")
        query(clean.database_url, "DROP FUNCTION refuse_poison()")


def test_clicks_of_a_deleted_link_are_not_counted_for_its_successor(clean):
    add_link(clean.database_url, "reused")
    old_id = scalar(clean.database_url, "SELECT id FROM urls WHERE code = 'reused'")
    with_ingester(clean, lambda i, c: i.ensure_group())
    add_clicks(clean.redis_url, "reused", 2, id=str(old_id))
    query(clean.database_url, "DELETE FROM urls WHERE code = 'reused'")
    add_link(clean.database_url, "reused")

    async def step(ingester, client):
        return await ingester.step(block_ms=100)

    assert with_ingester(clean, step) == 0
    assert scalar(clean.database_url, "SELECT click_count FROM urls WHERE code = 'reused'") == 0


def test_nul_characters_are_stripped_and_bad_codes_dropped():
    click = parse_entry(b"1-0", {b"code": b"abc", b"ts": b"1", b"ua": b"a\x00b"})
    assert click.user_agent == "ab"
    assert parse_entry(b"1-0", {b"code": b"../x", b"ts": b"1"}) is None
    assert parse_entry(b"1-0", {b"code": b"abc", b"ts": b"1", b"id": b"-4"}) is None


def test_bots_are_marked_from_their_user_agent(clean):
    add_link(clean.database_url, "botty")
    with_ingester(clean, lambda i, c: i.ensure_group())
    add_clicks(clean.redis_url, "botty", 1, ua="Mozilla/5.0 (compatible; Googlebot/2.1)")
    add_clicks(clean.redis_url, "botty", 1, ua="Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0")

    async def step(ingester, client):
        return await ingester.step(block_ms=100)

    assert with_ingester(clean, step) == 2
    rows = query(clean.database_url, "SELECT user_agent, is_bot FROM clicks")
    assert {r["user_agent"][:30]: r["is_bot"] for r in rows} == {
        "Mozilla/5.0 (compatible; Googl": True,
        "Mozilla/5.0 (X11; Linux x86_64": False,
    }
