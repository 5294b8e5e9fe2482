"""Worker ingest rate next to raw COPY of the same rows into the same table.

Both sides store the same clicks (same links, times, agents, referrers, visitor
hashes) into the partitioned ``clicks`` table of a fresh database:

- raw COPY: the finished rows, enriched beforehand, in one
  ``copy_records_to_table`` call: the fastest way PostgreSQL takes them, with
  nothing else done;
- worker: the clicks as the redirect writes them to ``shorty:clicks``, read by
  the real consumers (``ClickIngester`` + ``Consumer``, as many as a worker
  runs) in their batches of 500 and stored with everything they do: parse,
  enrich (ua-parser cache cleared first), COPY the raw rows (marked with the
  storing transaction), ``click_count``, acknowledge; while the rollup
  aggregator runs beside them on the worker's interval, as in the worker. The
  ingest rate is clicks over the time until every click is stored and counted;
  "rolled up" is over the time until the statistics hold them all too.

Two more figures take the parts alone: "store only" hands the same clicks,
already parsed, to ``ClickIngester.store`` (batches of 500, one at a time; no
Redis, no parsing, no aggregator), and "aggregator" rolls up all of them at
once afterwards (``Aggregator.drain``): what PostgreSQL spends on each half.

Rounds alternate; each ratio is the median of the rounds' own ratios (the
machine's speed drifts from round to round, the figures of one round are taken
back to back). Target: the worker at >= 0.5 of raw COPY. Writes bench/results/ingest.json.
Usage: python -m bench ingest [--clicks N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import redis.asyncio as aredis

from shorty import embedded
from shorty.redirect.clicks import STREAM
from shorty.settings import Settings
from shorty.store import migrate
from shorty.worker.enrich import GeoIP, describe_agent
from shorty.worker.ingest import CLICK_COLUMNS, Click, ClickIngester, parse_entry
from shorty.worker.rollup import Aggregator
from shorty.worker.streams import Consumer

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / ".shorty-data" / "bench"
LINKS = 1_000
ZIPF = 1.0  # link popularity: the n-th most popular link gets 1/n of the top one's clicks
SPAN = timedelta(days=2)  # the traffic the clicks stand for
TARGET = 0.5
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    f" Chrome/{v}.0.0.0 Safari/537.36"
    for v in range(118, 131)
] + [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/129.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "curl/8.5.0",
]
REFERRERS = ["", "news.example.org", "t.co", "www.google.com", "mail.example.com"]


def make_clicks(count: int, seed: int = 7) -> list[dict[str, str]]:
    """Stream entries as the redirect writes them (field for field): in time order,
    as a stream is, over ``SPAN`` of traffic; links drawn with Zipf-like popularity
    (a few hot links, a long tail), visitors and agents at random."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    weights = [1 / rank**ZIPF for rank in range(1, LINKS + 1)]
    links = rng.choices(range(1, LINKS + 1), weights, k=count)
    clicks = []
    prefix = f"{rng.getrandbits(64):016x}"  # one redirect process's click ids
    for i, link in enumerate(links):
        at = start + SPAN * (i / count)
        clicks.append(
            {
                "code": f"bench{link:05d}",
                "id": str(link),
                "ts": str(int(at.timestamp() * 1000)),
                "ref": rng.choice(REFERRERS),
                "ua": rng.choice(AGENTS),
                "vh": f"{rng.randrange(count // 3):016x}",
                "net": f"203.0.{i % 256}.0",
                "cid": f"{prefix}{i:x}",
            }
        )
    return clicks


async def reset(pool: asyncpg.Pool) -> None:
    """Empty tables, and a checkpoint: every side starts with no dirty pages to write
    and a fresh WAL cycle (without it, raw COPY alone swung by half from run to run)."""
    await pool.execute("TRUNCATE clicks, click_rollups, click_visitors")
    await pool.execute("UPDATE urls SET click_count = 0")
    await pool.execute("CHECKPOINT")


def parse_all(clicks: list[dict[str, str]]) -> list[Click]:
    """The stream entries as the ingester parses them (IDs 1-0, 2-0, ...)."""
    return [parse_entry(f"{i + 1}-0".encode(), _bytes(c)) for i, c in enumerate(clicks)]


async def raw_copy(pool: asyncpg.Pool, parsed: list[Click]) -> float:
    """Clicks per second of one COPY of the finished rows."""
    ingester = ClickIngester(pool)
    await ingester.ensure_partitions(parsed)
    ids = {f"bench{n:05d}": n for n in range(1, LINKS + 1)}
    rows = []
    for click in parsed:
        row = ingester.row(click)
        rows.append((row[0], ids[click.code], *row[2:], 1))  # + ingest_xact, as the worker
    await reset(pool)
    async with pool.acquire() as conn:
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "clicks", records=rows, columns=(*CLICK_COLUMNS, "ingest_xact")
        )
        elapsed = time.perf_counter() - started
    assert await pool.fetchval("SELECT count(*) FROM clicks") == len(parsed)
    return len(parsed) / elapsed


async def worker(
    pool: asyncpg.Pool, client: aredis.Redis, clicks: list[dict[str, str]], consumers: int
) -> tuple[float, float]:
    """Clicks per second of the real consumers (as many as a worker runs) draining the
    stream with the aggregator running beside them: until all are stored and counted,
    and until all are rolled up too."""
    await reset(pool)
    await client.delete(STREAM)
    async with client.pipeline(transaction=False) as pipe:
        for click in clicks:
            pipe.xadd(STREAM, click)  # type: ignore[arg-type]
        await pipe.execute()
    describe_agent.cache_clear()
    ingester = ClickIngester(pool, GeoIP(None))
    aggregator = Aggregator(pool)
    interval = Settings.model_fields["rollup_interval"].default  # as the worker runs it
    group = [ingester.consumer(client, f"bench-{i}") for i in range(consumers)]
    await group[0].ensure_group()
    handled = 0

    async def drain(consumer: Consumer) -> None:
        nonlocal handled
        while handled < len(clicks):
            step = await consumer.step(block_ms=50)  # awaited first: the others add too
            handled += step

    async def roll_up(stored: asyncio.Event) -> None:
        while not stored.is_set():
            if not (await aggregator.step()).behind:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stored.wait(), interval)
        await aggregator.drain()  # the clicks stored since its last step

    stored = asyncio.Event()
    started = time.perf_counter()
    rolling = asyncio.create_task(roll_up(stored))
    await asyncio.gather(*(drain(consumer) for consumer in group))
    ingested = time.perf_counter() - started
    stored.set()
    await rolling
    rolled = time.perf_counter() - started
    counted = await pool.fetchval("SELECT sum(click_count) FROM urls")
    in_rollups = await pool.fetchval("SELECT sum(clicks) FROM click_rollups WHERE dimension = ''")
    assert counted == in_rollups == len(clicks), (counted, in_rollups, len(clicks))
    return len(clicks) / ingested, len(clicks) / rolled


async def store_only(pool: asyncpg.Pool, parsed: list[Click]) -> tuple[float, float]:
    """Clicks per second of the two halves alone: the ingester's transaction (parsed
    clicks handed to ``ClickIngester.store`` in batches of 500, one at a time; no
    Redis, no parsing), then the aggregator rolling them all up."""
    ingester = ClickIngester(pool, GeoIP(None))
    await reset(pool)
    started = time.perf_counter()
    for start in range(0, len(parsed), 500):
        await ingester.store(parsed[start : start + 500])
    stored = time.perf_counter() - started
    started = time.perf_counter()
    assert await Aggregator(pool).drain() == len(parsed)
    rolled = time.perf_counter() - started
    return len(parsed) / stored, len(parsed) / rolled


def _bytes(click: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in click.items()}


async def measure(database_url: str, redis_url: str, count: int, rounds: int) -> dict[str, object]:
    consumers = Settings.model_fields["ingest_consumers"].default  # what a worker runs
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=consumers + 2)
    client = aredis.Redis.from_url(redis_url)
    try:
        await pool.execute(
            "INSERT INTO urls (code, target) SELECT 'bench' || lpad(n::text, 5, '0'),"
            " 'https://example.com/' || n FROM generate_series(1, $1) AS n",
            LINKS,
        )
        clicks = make_clicks(count)
        parsed = parse_all(clicks)
        await worker(pool, client, clicks[:2000], consumers)  # warm-up: plans, partitions
        copy_rates: list[float] = []
        worker_rates: list[tuple[float, float]] = []
        store_rates: list[tuple[float, float]] = []
        for _ in range(rounds):
            copy_rates.append(await raw_copy(pool, parsed))
            worker_rates.append(await worker(pool, client, clicks, consumers))
            store_rates.append(await store_only(pool, parsed))
    finally:
        await client.delete(STREAM)
        await client.aclose()
        await pool.close()

    # The machine's speed drifts between rounds (shared cores): each ratio compares
    # the figures of one round, measured back to back, and the median ratio is taken.
    def ratio(rates: list[float]) -> float:
        return round(statistics.median(r / c for r, c in zip(rates, copy_rates, strict=True)), 3)

    return {
        "clicks": count,
        "rounds": rounds,
        "consumers": consumers,
        "raw_copy_per_s": round(statistics.median(copy_rates)),
        "worker_per_s": round(statistics.median(r[0] for r in worker_rates)),
        "ratio": ratio([r[0] for r in worker_rates]),
        "rolled_up_per_s": round(statistics.median(r[1] for r in worker_rates)),
        "rolled_up_ratio": ratio([r[1] for r in worker_rates]),
        "store_only_per_s": round(statistics.median(r[0] for r in store_rates)),
        "store_only_ratio": ratio([r[0] for r in store_rates]),
        "aggregator_per_s": round(statistics.median(r[1] for r in store_rates)),
        "target": TARGET,
        "raw_copy_rounds": [round(r) for r in copy_rates],
        "worker_rounds": [round(r[0]) for r in worker_rates],
        "rolled_up_rounds": [round(r[1]) for r in worker_rates],
        "store_only_rounds": [round(r[0]) for r in store_rates],
        "aggregator_rounds": [round(r[1]) for r in store_rates],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench ingest")
    parser.add_argument("--clicks", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    admin_url = os.environ.get("SHORTY_DATABASE_URL")
    redis_url = os.environ.get("SHORTY_REDIS_URL")
    DATA.mkdir(parents=True, exist_ok=True)
    servers = embedded.start(DATA, postgres=admin_url is None, redis=redis_url is None)
    admin_url = admin_url or servers.database_url
    redis_url = redis_url or servers.redis_url
    assert admin_url is not None
    assert redis_url is not None
    name = f"shorty_bench_{secrets.token_hex(4)}"
    database_url = asyncio.run(embedded.ensure_database(admin_url, name))
    try:
        migrate.upgrade(database_url)
        row = asyncio.run(measure(database_url, redis_url, args.clicks, args.rounds))
    finally:
        asyncio.run(embedded.drop_database(admin_url, name))
        servers.stop()
    verdict = "met" if float(row["ratio"]) >= TARGET else "NOT met"  # type: ignore[arg-type]
    print(
        f"{'clicks':>8}{'raw COPY/s':>12}{'worker/s':>10}{'ratio':>7}{'rolled up/s':>13}"
        f"{'ratio':>7}{'store only/s':>14}{'ratio':>7}{'aggregator/s':>14}  target >= {TARGET}"
    )
    print(
        f"{row['clicks']:>8}{row['raw_copy_per_s']:>12}{row['worker_per_s']:>10}"
        f"{row['ratio']:>7}{row['rolled_up_per_s']:>13}{row['rolled_up_ratio']:>7}"
        f"{row['store_only_per_s']:>14}{row['store_only_ratio']:>7}"
        f"{row['aggregator_per_s']:>14}  {verdict}"
    )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    payload = {"when": datetime.now(UTC).isoformat(timespec="seconds"), **row}
    (results / "ingest.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
