"""The consumer's delivery rules: retries with backoff, dead letters, claims, replay."""

import asyncio
import json
import os
import subprocess
import sys

import asyncpg
import pytest
import redis
import redis.asyncio as aredis
from redis.exceptions import ResponseError

from shorty.redirect.clicks import STREAM
from shorty.resilience.retry import full_jitter
from shorty.worker.ingest import GROUP
from shorty.worker.streams import DLQ, Consumer, Failure
from tests.helpers import query
from tests.worker.helpers import add_clicks, add_link, count_of, with_consumer


@pytest.fixture
def client(clean):
    """A Redis client, and the stream ``t:stream`` with the group ``g`` reading it from
    the start: what a Consumer under test is given."""
    client = redis.Redis.from_url(clean.redis_url)
    client.xgroup_create("t:stream", "g", id="0", mkstream=True)
    yield client
    client.close()


def test_full_jitter_stays_within_the_doubling_bound():
    assert full_jitter(1, 0.5, 60, lambda: 1.0) == 0.5
    assert full_jitter(4, 0.5, 60, lambda: 1.0) == 4.0
    assert full_jitter(20, 0.5, 60, lambda: 1.0) == 60  # capped
    assert full_jitter(3, 0.5, 60, lambda: 0.25) == 0.5
    assert full_jitter(3, 0.5, 60, lambda: 0.0) == 0.0


def test_full_jitter_after_any_number_of_failures():
    # The worker's loops count an outage's failures in a row without a limit; at one
    # every 0.5 s (its backoff of up to 1 s), 1,025 of them came after ~9 minutes of a
    # PostgreSQL outage and raised OverflowError, which ended the worker.
    for failures in (1_025, 10**6):
        assert full_jitter(failures, 0.1, 1.0, lambda: 1.0) == 1.0
        assert full_jitter(failures, 0.1, 1.0, lambda: 0.5) == 0.5


@pytest.fixture
def poison_trigger(clean):
    """PostgreSQL refuses any click whose user agent is 'poison' (until the fix)."""
    query(clean.database_url, "SELECT shorty_click_partition('2026-01-01')")
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
        "CREATE TRIGGER refuse BEFORE INSERT ON clicks_2026_01"
        " FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    )

    def fix():
        query(clean.database_url, "DROP TRIGGER IF EXISTS refuse ON clicks_2026_01")
        query(clean.database_url, "DROP FUNCTION IF EXISTS refuse_poison()")

    yield fix
    fix()


def dlq_cli(clean, *args):
    env = {**os.environ, "SHORTY_REDIS_URL": clean.redis_url}
    return subprocess.run(
        [sys.executable, "-m", "shorty", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_poison_reaches_the_dlq_after_n_tries_and_replay_counts_it_once(clean, poison_trigger):
    add_link(clean.database_url, "poisoned")
    with_consumer(clean, lambda c, r, i: asyncio.sleep(0))
    add_clicks(clean.redis_url, "poisoned", 2)
    (poison_id,) = add_clicks(clean.redis_url, "poisoned", 1, ua="poison")
    add_clicks(clean.redis_url, "poisoned", 1)

    async def until_buried(consumer, client, ingester):
        for _ in range(200):  # bounded: each retry is due within 2 ms
            await consumer.step(block_ms=10)
            if await client.xlen(DLQ):
                return
        raise AssertionError("the poison entry never reached the dead letters")

    with_consumer(clean, until_buried, max_deliveries=3, retry_base=0.001, rand=lambda: 1.0)
    assert count_of(clean.database_url, "poisoned") == 3  # the others did not wait
    check = redis.Redis.from_url(clean.redis_url)
    assert check.xpending(STREAM, GROUP)["pending"] == 0

    listed = dlq_cli(clean, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (letter,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["stream"] == STREAM
    assert letter["entry_id"] == poison_id.decode()
    assert letter["deliveries"] == 3
    assert "refused on purpose" in letter["error"]
    assert letter["fields"]["ua"] == "poison"
    shown = dlq_cli(clean, "show", letter["id"])
    assert json.loads(shown.stdout)["id"] == letter["id"]

    poison_trigger()  # the fix
    replayed = dlq_cli(clean, "replay", letter["id"])
    assert replayed.returncode == 0, replayed.stderr
    assert "Replayed 1 letter" in replayed.stdout
    assert check.xlen(DLQ) == 0
    # Replayed a second time by mistake: the entry's first ID keeps it counted once.
    (entry,) = check.xrange(STREAM, min=b"(" + poison_id)[-1:]
    check.xadd(STREAM, entry[1])
    assert with_consumer(clean, lambda c, r, i: c.step(block_ms=100)) == 2
    assert count_of(clean.database_url, "poisoned") == 4
    check.close()


def test_dlq_cli_refuses_unclear_requests_and_purges(clean):
    client = redis.Redis.from_url(clean.redis_url)
    client.xadd(DLQ, {"code": "x", "dlq:stream": STREAM, "dlq:error": "e"})
    client.xadd(DLQ, {"code": "y", "dlq:stream": "elsewhere", "dlq:error": "e"})
    both = dlq_cli(clean, "replay", "1-0", "--all")
    assert both.returncode == 2
    assert "not both" in both.stderr
    unknown = dlq_cli(clean, "replay", "--all")
    assert unknown.returncode == 1
    assert "unknown stream 'elsewhere'" in unknown.stderr
    missing = dlq_cli(clean, "show", "9-9")
    assert missing.returncode == 1
    assert "No letter 9-9" in missing.stderr
    assert "2 letter(s)" in dlq_cli(clean, "list").stdout
    purged = dlq_cli(clean, "purge", "--all", "--yes")
    assert "Purged 2 letter(s)" in purged.stdout
    assert client.xlen(DLQ) == 0
    client.close()


def test_dlq_cli_without_redis_says_so():
    env = {**os.environ, "SHORTY_REDIS_URL": "redis://127.0.0.1:1"}
    run = subprocess.run(
        [sys.executable, "-m", "shorty", "dlq", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "Cannot reach Redis" in run.stderr
    assert "Traceback" not in run.stderr


class Flaky:
    """A handler that fails with an outage ``outages`` times, then accepts."""

    def __init__(self, outages):
        self.outages = outages
        self.seen = []

    async def __call__(self, entries):
        self.seen.append([entry_id for entry_id, _ in entries])
        if self.outages:
            self.outages -= 1
            raise asyncpg.CannotConnectNowError("starting up")
        return {}


def test_an_outage_hands_the_same_batch_over_without_counting_deliveries(clean, client):
    ids = [client.xadd("t:stream", {"n": str(i)}) for i in range(3)]
    handler = Flaky(outages=7)

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(async_client, "t:stream", "g", "c1", handler, max_deliveries=2)
        for _ in range(7):
            with pytest.raises(asyncpg.CannotConnectNowError):
                await consumer.step(block_ms=10)
        assert await consumer.step(block_ms=10) == 3
        await async_client.aclose()

    asyncio.run(go())
    assert handler.seen == [ids] * 8
    assert client.xpending("t:stream", "g")["pending"] == 0
    assert client.xlen(DLQ) == 0  # eight tries, yet only one delivery


def test_worn_out_entries_of_dead_consumers_go_to_the_dead_letters(clean, client):
    """An entry whose consumers keep dying (it may be what kills them) is not retried
    forever: once delivered more than max_deliveries times it is buried on claim."""
    killer = client.xadd("t:stream", {"n": "killer"})
    fine = client.xadd("t:stream", {"n": "fine"})
    client.xreadgroup("g", "dead", {"t:stream": ">"})
    for _ in range(3):  # three more deliveries to consumers that died too
        client.xclaim("t:stream", "g", "dead", 0, [killer])
    accepted = []

    async def handler(entries):
        accepted.extend(entry_id for entry_id, _ in entries)
        return {}

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(
            async_client, "t:stream", "g", "alive", handler, max_deliveries=3, claim_idle_ms=0
        )
        handled = await consumer.step(block_ms=10)
        await async_client.aclose()
        return handled

    assert asyncio.run(go()) == 1
    assert accepted == [fine]
    (letter,) = client.xrange(DLQ)
    assert letter[1][b"dlq:id"] == killer
    assert letter[1][b"dlq:deliveries"] == b"5"
    assert b"without being acknowledged" in letter[1][b"dlq:error"]
    assert client.xpending("t:stream", "g")["pending"] == 0


def test_permanent_failures_skip_the_retries_and_trimmed_entries_are_let_go(clean, client):
    bad = client.xadd("t:stream", {"n": "bad"})
    flaky = client.xadd("t:stream", {"n": "flaky"})
    calls = []

    async def handler(entries):
        calls.append([entry_id for entry_id, _ in entries])
        return {bad: Failure("never parses", permanent=True), flaky: Failure("not yet")}

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(
            async_client, "t:stream", "g", "c1", handler, retry_base=0.001, rand=lambda: 1.0
        )
        await consumer.step(block_ms=10)
        assert consumer.retry_due_in() is not None
        client.xdel("t:stream", flaky)  # trimmed away while it waited for its retry
        await asyncio.sleep(0.01)
        await consumer.step(block_ms=10)
        await async_client.aclose()

    asyncio.run(go())
    assert calls == [[bad, flaky]]
    assert [f[b"dlq:id"] for _, f in client.xrange(DLQ)] == [bad]
    assert client.xpending("t:stream", "g")["pending"] == 0


def test_entries_deleted_while_a_dead_consumer_held_them_are_let_go(clean, client):
    gone = client.xadd("t:stream", {"n": "gone"})
    kept = client.xadd("t:stream", {"n": "kept"})
    client.xreadgroup("g", "dead", {"t:stream": ">"})
    client.xdel("t:stream", gone)
    accepted = []

    async def handler(entries):
        accepted.extend(entry_id for entry_id, _ in entries)
        return {}

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(async_client, "t:stream", "g", "alive", handler, claim_idle_ms=0)
        await consumer.step(block_ms=10)
        await async_client.aclose()

    asyncio.run(go())
    assert accepted == [kept]
    assert client.xpending("t:stream", "g")["pending"] == 0


def test_after_a_restart_held_entries_are_read_once_then_wait_their_backoff(clean, client):
    """A consumer restarted under its old name reads what it held once; one that fails
    again waits for its retry instead of being re-read (each read counts a delivery)."""
    held = client.xadd("t:stream", {"n": "held"})
    client.xreadgroup("g", "same-name", {"t:stream": ">"})  # then the process died
    calls = []

    async def handler(entries):
        calls.append([entry_id for entry_id, _ in entries])
        return {held: Failure("still broken")}

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(
            async_client, "t:stream", "g", "same-name", handler, retry_base=60, rand=lambda: 1.0
        )
        for _ in range(5):
            await consumer.step(block_ms=10)
        await async_client.aclose()

    asyncio.run(go())
    assert calls == [[held]]
    (pending,) = client.xpending_range("t:stream", "g", "-", "+", 10)
    assert pending["times_delivered"] == 2  # the first read and the recovery, nothing more
    assert client.xlen(DLQ) == 0


def test_a_consumer_holds_at_most_max_retrying_failed_entries_the_rest_wait_in_the_stream(
    clean, client, caplog
):
    """Every entry failing (PostgreSQL refusing each, say): the consumer keeps at most
    ``max_retrying`` of them waiting for their retry and reads no more, however many
    arrive; the others wait in the stream. Once entries succeed, all are handled, none
    lost. (Without the bound, the six reads took 60 into memory.)"""
    ids = [client.xadd("t:stream", {"n": str(i)}) for i in range(100)]
    broken = [True]
    seen: list[bytes] = []

    async def handler(entries):
        seen.extend(entry_id for entry_id, _ in entries)
        return {i: Failure("refused") for i, _ in entries} if broken[0] else {}

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(
            async_client,
            "t:stream",
            "g",
            "c1",
            handler,
            batch=10,
            max_retrying=25,
            retry_base=0.3,
            rand=lambda: 1.0,
        )
        try:
            for _ in range(6):  # more reads than the bound needs
                await consumer.step(block_ms=10)
            held = len(consumer._retry_at)
            read = len(set(seen))
            broken[0] = False
            for _ in range(200):
                if client.xpending("t:stream", "g")["pending"] == 0 and len(set(seen)) == 100:
                    break
                await consumer.step(block_ms=50)
            return held, read
        finally:
            await async_client.aclose()

    with caplog.at_level("INFO", logger="shorty.worker.streams"):
        held, read = asyncio.run(go())
    print(f"100 entries, all failing: {read} read, {held} held for a retry (bound 25)")
    assert held == read == 25
    assert set(seen) == set(ids)  # all handled in the end, none lost
    assert client.xpending("t:stream", "g")["pending"] == 0
    assert client.xlen(DLQ) == 0
    assert "(SHORTY_MAX_RETRYING)" in caplog.text
    assert "reading new entries again" in caplog.text


@pytest.mark.parametrize(
    "args",
    [
        ("show", "foo"),
        ("list", "--after", "x-1"),
        ("replay", "1-0", "bad"),
        ("purge", "--yes", "?"),
    ],
)
def test_dlq_cli_refuses_malformed_ids(clean, args):
    run = dlq_cli(clean, *args)
    assert run.returncode == 2
    assert "Not a letter ID" in run.stderr
    assert "Traceback" not in run.stderr


def test_replay_all_stops_at_the_letters_present_when_it_started(clean):
    client = redis.Redis.from_url(clean.redis_url)
    for code in ("a1x", "b2y"):
        client.xadd(DLQ, {"code": code, "dlq:stream": STREAM, "dlq:id": "1-0", "dlq:error": "e"})
    replayed = dlq_cli(clean, "replay", "--all")
    assert "Replayed 2 letter(s)" in replayed.stdout
    assert client.xlen(STREAM) == 2
    assert client.xlen(DLQ) == 0
    client.close()


def test_a_command_redis_refuses_fails_the_entries_instead_of_stalling(clean, client):
    """WRONGTYPE and the like will not pass with time: the entries are retried and
    buried like any failure, not handed over forever as if Redis were away."""
    (entry,) = [client.xadd("t:stream", {"n": "1"})]
    calls = []

    async def handler(entries):
        calls.append(len(entries))
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(
            async_client, "t:stream", "g", "c1", handler, max_deliveries=2, retry_base=0.001
        )
        for _ in range(200):  # bounded: each retry is due within 2 ms
            await consumer.step(block_ms=10)
            if await async_client.xlen(DLQ):
                break
        await async_client.aclose()

    asyncio.run(go())
    assert calls == [1, 1]
    (letter,) = client.xrange(DLQ)
    assert letter[1][b"dlq:id"] == entry
    assert letter[1][b"dlq:error"].startswith(b"ResponseError: WRONGTYPE")


def test_claims_go_on_where_the_last_scan_stopped(clean, client):
    """Redis looks at count x 10 pending entries per claim: with a live consumer's
    entries in front, a scan that began at the start each time would never reach
    the dead consumer's entries behind them."""
    live = [client.xadd("t:stream", {"n": str(i)}) for i in range(25)]
    client.xreadgroup("g", "busy", {"t:stream": ">"})  # fresh: not claimable
    dead = [client.xadd("t:stream", {"n": str(i)}) for i in range(3)]
    client.xreadgroup("g", "dead", {"t:stream": ">"})
    client.xclaim("t:stream", "g", "dead", 0, dead, idle=60_000)  # idle for a minute
    seen = []

    async def handler(entries):
        seen.extend(entry_id for entry_id, _ in entries)
        return {}

    async def go():
        async_client = aredis.Redis.from_url(clean.redis_url)
        consumer = Consumer(async_client, "t:stream", "g", "alive", handler, claim_idle_ms=30_000)
        consumer.batch = 2
        for _ in range(4):
            consumer._next_claim = 0.0  # a claim scan on every step
            await consumer.step(block_ms=10)
        await async_client.aclose()

    asyncio.run(go())
    assert seen == dead
    assert client.xpending("t:stream", "g")["pending"] == len(live)
