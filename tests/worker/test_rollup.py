"""The rollup aggregator: every stored click rolled up once, none passed over."""

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from shorty.worker.ingest import Click, ClickIngester
from shorty.worker.rollup import Aggregator
from tests.helpers import query, roll_up, scalar

AT = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
TOTALS = "SELECT coalesce(sum(clicks), 0) FROM click_rollups WHERE dimension = ''"


def add_link(url, code):
    rows = query(
        url, "INSERT INTO urls (code, target) VALUES ($1, 'https://e.com') RETURNING id", code
    )
    return rows[0]["id"]


def clicks(code, link_id, n, first=1, visitor="v1"):
    return [
        Click(f"{first + i}-0", code, AT, "ref.example", "curl/8.5.0", visitor, "", link_id)
        for i in range(n)
    ]


async def with_pool(url, action):
    pool = await asyncpg.create_pool(url, min_size=1, max_size=3)
    try:
        return await action(pool)
    finally:
        await pool.close()


def store(url, batch):
    return asyncio.run(with_pool(url, lambda pool: ClickIngester(pool).store(batch)))


def test_clicks_wait_for_the_aggregator_and_are_rolled_up_once(clean):
    link = add_link(clean.database_url, "later")
    assert store(clean.database_url, clicks("later", link, 3)) == 3
    assert scalar(clean.database_url, TOTALS) == 0
    waiting = asyncio.run(with_pool(clean.database_url, lambda pool: Aggregator(pool).waiting()))
    assert waiting == 3
    assert roll_up(clean.database_url) == 3
    assert roll_up(clean.database_url) == 0
    assert scalar(clean.database_url, TOTALS) == 3
    assert (
        scalar(clean.database_url, "SELECT sum(visitors) FROM click_rollups WHERE dimension = ''")
        == 1
    )


def test_the_backlog_says_how_far_behind_the_rollups_are(clean):
    """What shorty_rollup_waiting_clicks and shorty_rollup_delay_seconds show: the
    clicks not rolled up yet, and the age of the oldest (since it was clicked)."""
    link = add_link(clean.database_url, "behind")

    def backlog():
        return asyncio.run(with_pool(clean.database_url, lambda pool: Aggregator(pool).backlog()))

    assert (backlog().clicks, backlog().oldest_age) == (0, 0.0)
    store(clean.database_url, clicks("behind", link, 2))
    waiting = backlog()
    assert waiting.clicks == 2
    assert abs(waiting.oldest_age - (datetime.now(UTC) - AT).total_seconds()) < 60
    roll_up(clean.database_url)
    assert (backlog().clicks, backlog().oldest_age) == (0, 0.0)


def test_a_transaction_still_open_holds_the_watermark_back(clean):
    """An ingest transaction that began first and commits last is not passed over."""
    link = add_link(clean.database_url, "late")

    async def scenario(pool):
        slow = await asyncpg.connect(clean.database_url)
        try:
            transaction = slow.transaction()
            await transaction.start()
            xact = await slow.fetchval("SELECT pg_current_xact_id()::text::bigint")
            await slow.execute(
                "INSERT INTO clicks (click_id, url_id, occurred_at, is_bot, ingest_xact)"
                " VALUES ('slow-0', $1, $2, false, $3)",
                link,
                AT,
                xact,
            )
            await ClickIngester(pool).store(clicks("late", link, 2, first=10))  # commits first
            aggregator = Aggregator(pool)
            first = await aggregator.drain()
            progress = await pool.fetchval("SELECT done_before FROM click_rollup_progress")
            await transaction.commit()
            second = await aggregator.drain()
            third = await aggregator.drain()
            return first, progress <= xact, second, third
        finally:
            await slow.close()

    first, held_back, second, third = asyncio.run(with_pool(clean.database_url, scenario))
    assert held_back
    assert first == 0  # the later transaction's clicks lie above the open one too
    assert (second, third) == (3, 0)
    assert scalar(clean.database_url, TOTALS) == 3


def test_one_aggregator_at_a_time(clean):
    link = add_link(clean.database_url, "turns")
    store(clean.database_url, clicks("turns", link, 2))

    async def scenario(pool):
        other = await asyncpg.connect(clean.database_url)
        try:
            async with other.transaction():  # another replica's aggregator holds the turn
                await other.execute("SELECT 1 FROM click_rollup_progress FOR UPDATE")
                skipped = await Aggregator(pool).step()
            return skipped, await Aggregator(pool).step()
        finally:
            await other.close()

    skipped, step = asyncio.run(with_pool(clean.database_url, scenario))
    assert (skipped.rolled, skipped.behind) == (0, False)
    assert step.rolled == 2
    assert scalar(clean.database_url, TOTALS) == 2


def test_steps_cover_a_span_that_adapts(clean):
    link = add_link(clean.database_url, "span")
    for first in (1, 11, 21):  # three ingest transactions
        store(clean.database_url, clicks("span", link, 2, first=first))

    async def scenario(pool):
        # Starting at one transaction ID per step, with every step using one itself:
        # only a span that grows ever catches up.
        aggregator = Aggregator(pool, span=1, target=4)
        steps = []
        while True:
            step = await aggregator.step()
            steps.append(step)
            if not step.behind:
                return steps

    steps = asyncio.run(with_pool(clean.database_url, scenario))
    assert len(steps) > 1
    assert sum(step.rolled for step in steps) == 6
    assert scalar(clean.database_url, TOTALS) == 6


def test_clicks_of_a_deleted_link_are_passed_over(clean):
    gone = add_link(clean.database_url, "gone")
    kept = add_link(clean.database_url, "kept")
    store(clean.database_url, clicks("gone", gone, 2) + clicks("kept", kept, 1, first=5))
    query(clean.database_url, "DELETE FROM urls WHERE code = 'gone'")
    assert roll_up(clean.database_url) == 1
    rows = query(clean.database_url, "SELECT DISTINCT url_id FROM click_rollups")
    assert [row["url_id"] for row in rows] == [kept]
    assert scalar(clean.database_url, "SELECT count(*) FROM click_visitors") == 1


def test_a_click_for_a_link_deleted_meanwhile_is_dropped_with_the_others_kept(clean):
    kept = add_link(clean.database_url, "stays")
    gone = add_link(clean.database_url, "went")
    query(clean.database_url, "DELETE FROM urls WHERE id = $1", gone)
    # The entries name the deleted link by ID: COPY meets the foreign key and the
    # batch goes the careful way.
    batch = clicks("stays", kept, 2) + clicks("went", gone, 1, first=7)
    assert store(clean.database_url, batch) == 2
    assert scalar(clean.database_url, "SELECT click_count FROM urls WHERE id = $1", kept) == 2
    assert store(clean.database_url, batch) == 0  # delivered again: nothing new
    assert roll_up(clean.database_url) == 2


def test_clicks_older_than_the_retention_are_left_out(clean):
    link = add_link(clean.database_url, "old")
    now = datetime.now(UTC)
    old = Click("1-0", "old", now - timedelta(days=3 * 365), "", "", "", "", link)
    new = Click("2-0", "old", now, "", "", "", "", link)

    async def scenario(pool):
        return await ClickIngester(pool, retention_days=400).store([old, new])

    assert asyncio.run(with_pool(clean.database_url, scenario)) == 1
    assert scalar(clean.database_url, "SELECT click_count FROM urls") == 1
    assert scalar(clean.database_url, "SELECT count(*) FROM clicks") == 1


def test_a_partition_dropped_behind_the_ingesters_back_is_made_again(clean):
    link = add_link(clean.database_url, "again")

    async def scenario(pool):
        ingester = ClickIngester(pool)
        await ingester.store(clicks("again", link, 1))  # the ingester now knows March
        await pool.execute("DROP TABLE clicks_2026_03")  # another worker's retention
        return await ingester.store(clicks("again", link, 1, first=2))

    assert asyncio.run(with_pool(clean.database_url, scenario)) == 1
    assert scalar(clean.database_url, "SELECT count(*) FROM clicks_2026_03") == 1


def test_idle_steps_leave_the_span_alone(clean):
    """Doubling while nothing waits would let the next backlog through in one step."""

    async def scenario(pool):
        aggregator = Aggregator(pool, span=8)
        await aggregator.drain()  # caught up with everything before (the span grew)
        span = aggregator._span
        for _ in range(20):
            await aggregator.step()
        return span, aggregator._span

    before, after = asyncio.run(with_pool(clean.database_url, scenario))
    assert after == before


def test_a_watermark_ahead_of_the_server_is_rebased(clean):
    """After a logical restore transaction IDs start low again: clicks already rolled
    up are not counted twice, those that were waiting are still counted once."""
    link = add_link(clean.database_url, "restored")
    far = 10**12
    query(clean.database_url, "SELECT shorty_click_partition($1)", AT)
    query(clean.database_url, "UPDATE click_rollup_progress SET done_before = $1", far)
    query(
        clean.database_url,
        "INSERT INTO clicks (click_id, url_id, occurred_at, ingest_xact)"
        " VALUES ('rolled-0', $1, $2, $3), ('waiting-0', $1, $2, $4)",
        link,
        AT,
        far - 5,  # below the old watermark: rolled up before the dump
        far + 5,  # above it: not yet
    )
    store(clean.database_url, clicks("restored", link, 1))  # stored after the restore
    assert roll_up(clean.database_url) == 2
    assert roll_up(clean.database_url) == 0
    assert scalar(clean.database_url, TOTALS) == 2
    assert scalar(clean.database_url, "SELECT done_before FROM click_rollup_progress") < far
