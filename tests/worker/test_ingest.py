"""Click ingestion through the ``ingest`` group: COPY, idempotency, enrichment, rollups."""

import asyncio
from datetime import UTC, datetime

import pytest
import redis
import redis.asyncio as aredis

from shorty.redirect.clicks import STREAM
from shorty.worker.enrich import GeoIP
from shorty.worker.ingest import GROUP, NotAClick, parse_entry
from shorty.worker.main import run_worker
from shorty.worker.streams import DLQ
from tests.helpers import query, roll_up, scalar
from tests.worker.helpers import FIREFOX, add_clicks, add_link, count_of, with_consumer

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)


async def one_step(consumer, client, ingester):
    return await consumer.step(block_ms=100)


def create_group(stack):
    with_consumer(stack, lambda c, r, i: asyncio.sleep(0))


def test_batch_is_stored_enriched_counted_and_acknowledged(clean):
    add_link(clean.database_url, "counted")
    add_link(clean.database_url, "other")
    create_group(clean)
    add_clicks(clean.redis_url, "counted", 3)
    add_clicks(clean.redis_url, "other", 1, ua=IPHONE)
    assert with_consumer(clean, one_step) == 4
    assert count_of(clean.database_url, "counted") == 3
    rows = query(
        clean.database_url,
        "SELECT u.code, referrer_host, user_agent, occurred_at, visitor_hash, is_bot, browser,"
        " os, device, country, clicks.tableoid::regclass::text AS part"
        " FROM clicks JOIN urls u ON u.id = url_id ORDER BY u.code",
    )
    assert len(rows) == 4
    assert {r["part"] for r in rows} == {"clicks_2026_01"}
    assert rows[0]["occurred_at"].isoformat() == "2026-01-01T00:00:00+00:00"
    assert {(r["referrer_host"], r["visitor_hash"], r["is_bot"]) for r in rows} == {
        ("ref.example", "0123abcd", False)
    }
    described = {(r["code"], r["browser"], r["os"], r["device"], r["country"]) for r in rows}
    assert described == {
        ("counted", "Firefox", "Linux", "Other", None),
        ("other", "Mobile Safari", "iOS", "iPhone", None),
    }
    assert redis.Redis.from_url(clean.redis_url).xpending(STREAM, GROUP)["pending"] == 0


def test_rollups_hold_clicks_and_first_visits_per_dimension(clean):
    add_link(clean.database_url, "rolled")
    create_group(clean)
    # Same visitor twice in the hour, once more the next hour; another visitor once.
    add_clicks(clean.redis_url, "rolled", 2)
    add_clicks(clean.redis_url, "rolled", 1, ts="1767229200000")
    add_clicks(clean.redis_url, "rolled", 1, vh="ffff0000", ref="", ua=IPHONE)
    assert with_consumer(clean, one_step) == 4
    assert scalar(clean.database_url, "SELECT count(*) FROM click_rollups") == 0  # not yet
    assert roll_up(clean.database_url) == 4
    rows = query(
        clean.database_url,
        "SELECT to_char(hour AT TIME ZONE 'UTC', 'HH24') AS h, dimension, value, clicks, visitors"
        " FROM click_rollups ORDER BY dimension, hour, value",
    )
    got = {(r["dimension"], r["h"], r["value"]): (r["clicks"], r["visitors"]) for r in rows}
    assert got[("", "00", "")] == (3, 2)
    assert got[("", "01", "")] == (1, 0)  # seen earlier that day: not a new visitor
    assert got[("referrer", "00", "ref.example")] == (2, 1)
    assert got[("referrer", "00", "")] == (1, 1)
    assert got[("browser", "00", "Mobile Safari")] == (1, 1)
    assert got[("os", "01", "Linux")] == (1, 0)
    assert got[("country", "00", "")] == (3, 2)

    # The same visitor on a later batch of the same day is still not new.
    add_clicks(clean.redis_url, "rolled", 1, ts="1767232800000")
    assert with_consumer(clean, one_step) == 1
    assert roll_up(clean.database_url) == 1
    assert (
        scalar(
            clean.database_url,
            "SELECT sum(visitors) FROM click_rollups WHERE dimension = ''",
        )
        == 2
    )


def test_redelivered_entries_are_counted_once(clean):
    add_link(clean.database_url, "once")
    create_group(clean)
    add_clicks(clean.redis_url, "once", 2)

    async def twice(consumer, client, ingester):
        entries = await client.xrange(STREAM)
        first = await ingester.handle(entries)
        second = await ingester.handle(entries)
        return first, second

    assert with_consumer(clean, twice) == ({}, {})
    assert count_of(clean.database_url, "once") == 2
    assert scalar(clean.database_url, "SELECT count(*) FROM clicks") == 2
    assert roll_up(clean.database_url) == 2
    assert (
        scalar(clean.database_url, "SELECT sum(clicks) FROM click_rollups WHERE dimension=''") == 2
    )


def test_a_replayed_entry_keeps_its_first_id(clean):
    add_link(clean.database_url, "replayed")
    create_group(clean)
    (first,) = add_clicks(clean.redis_url, "replayed", 1)
    add_clicks(clean.redis_url, "replayed", 1, origin=first.decode())
    assert with_consumer(clean, one_step) == 2
    assert count_of(clean.database_url, "replayed") == 1


def test_pending_entries_of_a_dead_consumer_are_claimed(clean):
    add_link(clean.database_url, "orphan")
    create_group(clean)
    add_clicks(clean.redis_url, "orphan", 2)
    dead = redis.Redis.from_url(clean.redis_url)
    assert len(dead.xreadgroup(GROUP, "dead-consumer", {STREAM: ">"})[0][1]) == 2  # never acked
    dead.close()
    assert with_consumer(clean, one_step, name="alive", claim_idle_ms=0) == 2
    assert count_of(clean.database_url, "orphan") == 2


def test_malformed_entries_go_to_the_dead_letters_at_once(clean):
    add_link(clean.database_url, "real")
    create_group(clean)
    client = redis.Redis.from_url(clean.redis_url)
    client.xadd(STREAM, {"garbage": "1"})
    client.xadd(STREAM, {"code": "real", "ts": "not-a-number"})
    add_clicks(clean.redis_url, "deleted-link", 1)  # a link deleted since: dropped
    add_clicks(clean.redis_url, "real", 1)
    assert with_consumer(clean, one_step) == 4
    assert count_of(clean.database_url, "real") == 1
    assert client.xpending(STREAM, GROUP)["pending"] == 0
    letters = client.xrange(DLQ)
    assert [f[b"dlq:error"] for _, f in letters] == [
        b"not a click: field b'code' missing",
        b"not a click: bad value: invalid literal for int() with base 10: b'not-a-number'",
    ]
    client.close()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({b"code": b"abc", b"ts": b"1767225600000"}, None),
        ({b"code": b"abc"}, "field b'ts' missing"),
        ({b"ts": b"1"}, "field b'code' missing"),
        ({b"code": b"abc", b"ts": b"99999999999999999999"}, "bad value"),
        ({b"code": b"abc", b"ts": b"1"}, "time out of range"),
        ({b"code": b"../x", b"ts": b"1767225600000"}, "not a short code"),
        ({b"code": b"abc", b"ts": b"1767225600000", b"id": b"-4"}, "link id out of range"),
    ],
)
def test_parse_entry(fields, problem):
    if problem is None:
        assert parse_entry(b"1-0", fields).code == "abc"
    else:
        with pytest.raises(NotAClick, match=problem):
            parse_entry(b"1-0", fields)


def test_nul_characters_are_stripped():
    click = parse_entry(b"1-0", {b"code": b"abc", b"ts": b"1767225600000", b"ua": b"a\x00b"})
    assert click.user_agent == "ab"


def test_worker_process_loop_ingests_until_stopped(settings, clean):
    add_link(clean.database_url, "looped")

    async def scenario():
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop))
        client = aredis.Redis.from_url(clean.redis_url)
        counted = None
        try:
            await client.xadd(STREAM, {"code": "looped", "ts": "1767225600000"})
            for _ in range(100):  # bounded wait: up to 10 s
                counted = await asyncio.to_thread(count_of, clean.database_url, "looped")
                if counted == 1:
                    break
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await client.aclose()
        await asyncio.wait_for(worker, 5)
        check = aredis.Redis.from_url(clean.redis_url)
        consumers = await check.xinfo_consumers(STREAM, GROUP)
        await check.aclose()
        return counted, consumers

    counted, consumers = asyncio.run(scenario())
    assert counted == 1
    assert consumers == []  # a worker that stops cleanly leaves the group


def test_clicks_of_a_deleted_link_are_not_counted_for_its_successor(clean):
    add_link(clean.database_url, "reused")
    old_id = scalar(clean.database_url, "SELECT id FROM urls WHERE code = 'reused'")
    create_group(clean)
    add_clicks(clean.redis_url, "reused", 2, id=str(old_id))
    query(clean.database_url, "DELETE FROM urls WHERE code = 'reused'")
    add_link(clean.database_url, "reused")
    assert with_consumer(clean, one_step) == 2
    assert count_of(clean.database_url, "reused") == 0


def test_bots_are_marked_from_their_user_agent(clean):
    add_link(clean.database_url, "botty")
    create_group(clean)
    add_clicks(clean.redis_url, "botty", 1, ua="Mozilla/5.0 (compatible; Googlebot/2.1)")
    add_clicks(clean.redis_url, "botty", 1, ua="facebookexternalhit/1.1")
    add_clicks(clean.redis_url, "botty", 1, ua=FIREFOX)
    assert with_consumer(clean, one_step) == 3
    rows = query(clean.database_url, "SELECT user_agent, is_bot FROM clicks")
    assert {r["user_agent"][:23]: r["is_bot"] for r in rows} == {
        "Mozilla/5.0 (compatible": True,
        "facebookexternalhit/1.1": True,
        "Mozilla/5.0 (X11; Linux": False,
    }


def test_country_comes_from_a_maxmind_database(clean, tmp_path):
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    path = tmp_path / "countries.mmdb"
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Country")
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NZ"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "DE"}})
    writer.to_db_file(str(path))
    geoip = GeoIP(path)
    assert geoip.enabled
    add_link(clean.database_url, "geo")
    create_group(clean)
    add_clicks(clean.redis_url, "geo", 1, net="203.0.113.0")
    add_clicks(clean.redis_url, "geo", 1, net="2001:db8:1::")
    add_clicks(clean.redis_url, "geo", 1, net="198.51.100.0")  # not in the database
    add_clicks(clean.redis_url, "geo", 1, net="nonsense")
    assert with_consumer(clean, one_step, geoip=geoip) == 4
    countries = query(clean.database_url, "SELECT country FROM clicks ORDER BY country")
    assert [r["country"] for r in countries] == ["DE", "NZ", None, None]
    geoip.close()


def test_a_missing_geoip_database_means_unknown_not_an_error(tmp_path):
    geoip = GeoIP(tmp_path / "absent.mmdb")
    assert not geoip.enabled
    assert geoip.country("203.0.113.0") is None


def test_clicks_land_in_the_partition_of_their_month(clean):
    add_link(clean.database_url, "months")
    create_group(clean)
    stamp = int(datetime(2027, 3, 31, 23, 59, tzinfo=UTC).timestamp() * 1000)
    add_clicks(clean.redis_url, "months", 1, ts=str(stamp))
    add_clicks(clean.redis_url, "months", 1, ts=str(stamp + 120_000))
    assert with_consumer(clean, one_step) == 2
    parts = query(clean.database_url, "SELECT tableoid::regclass::text FROM clicks ORDER BY 1")
    assert [r[0] for r in parts] == ["clicks_2027_03", "clicks_2027_04"]


def test_a_click_written_twice_is_stored_once(clean):
    """The same click under two stream entry IDs (a write that timed out but ran, and
    its retry), in two batches: its own id makes it one click."""
    add_link(clean.database_url, "twice")  # link id 1
    create_group(clean)
    (first,) = add_clicks(clean.redis_url, "twice", 1, id="1", cid="a1b2c3d4e5f6a7b80")
    assert with_consumer(clean, one_step) == 1
    (again,) = add_clicks(clean.redis_url, "twice", 1, id="1", cid="a1b2c3d4e5f6a7b80")
    add_clicks(clean.redis_url, "twice", 1, id="1", cid="a1b2c3d4e5f6a7b81")
    assert first != again
    assert with_consumer(clean, one_step) == 2
    assert count_of(clean.database_url, "twice") == 2
    assert {r["click_id"] for r in query(clean.database_url, "SELECT click_id FROM clicks")} == {
        "a1b2c3d4e5f6a7b80",
        "a1b2c3d4e5f6a7b81",
    }
    assert roll_up(clean.database_url) == 2
    assert redis.Redis.from_url(clean.redis_url).xpending(STREAM, GROUP)["pending"] == 0


def test_a_click_written_twice_in_one_batch_is_stored_once(clean):
    """Both copies in the same batch: the COPY meets its own duplicate and the batch
    goes the careful way."""
    add_link(clean.database_url, "samebatch")
    create_group(clean)
    for _ in range(2):
        add_clicks(clean.redis_url, "samebatch", 1, id="1", cid="ffee0")
    add_clicks(clean.redis_url, "samebatch", 1, id="1", cid="ffee1")
    assert with_consumer(clean, one_step) == 3
    assert count_of(clean.database_url, "samebatch") == 2


def test_entries_without_a_click_id_are_known_by_their_entry_id(clean):
    """Entries written before click ids (in the stream during an upgrade) count once
    each, and once only when delivered again."""
    add_link(clean.database_url, "legacy")
    create_group(clean)
    ids = add_clicks(clean.redis_url, "legacy", 2)
    add_clicks(clean.redis_url, "legacy", 1, cid="0123456789abcdef0")

    async def twice(consumer, client, ingester):
        entries = await client.xrange(STREAM)
        return await ingester.handle(entries), await ingester.handle(entries)

    assert with_consumer(clean, twice) == ({}, {})
    assert count_of(clean.database_url, "legacy") == 3
    keys = {r["click_id"] for r in query(clean.database_url, "SELECT click_id FROM clicks")}
    assert keys == {*(i.decode() for i in ids), "0123456789abcdef0"}


@pytest.mark.parametrize(
    ("cid", "problem"),
    [(b"", "bad click id"), (b"x" * 65, "bad click id"), (b"\xff", "bad value")],
)
def test_a_bad_click_id_is_not_a_click(cid, problem):
    with pytest.raises(NotAClick, match=problem):
        parse_entry(b"1-0", {b"code": b"abc", b"ts": b"1767225600000", b"cid": cid})
