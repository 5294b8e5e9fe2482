"""Click ingestion: ``shorty:clicks`` entries -> ``clicks`` rows, rollups, ``click_count``.

A batch is enriched (browser, OS, device, bot, country), copied into a
temporary table with COPY, and moved from there in one transaction: raw rows
into the month's partition, one rollup row per link, hour and dimension value,
the day's new visitors, and ``urls.click_count``. The consumer acknowledges the
entries only after that commits. The raw row's key is the entry's stream ID
(its first ID, for a replayed entry), so an entry delivered twice counts once.

An entry that is not a click is a permanent failure (dead-letter stream at
once); a click PostgreSQL refuses fails on its own, after the batch is retried
one click at a time, and goes to the dead letters after its last delivery.
A click for a link deleted since is dropped without a trace, like the link's
other clicks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aredis

from shorty.core.codes import is_well_formed
from shorty.obs.metrics import CLICKS_INGESTED
from shorty.redirect.clicks import STREAM
from shorty.store.errors import UNAVAILABLE
from shorty.worker.enrich import GeoIP, describe_agent
from shorty.worker.streams import Consumer, Entry, Failure, entry_origin

log = logging.getLogger(__name__)

GROUP = "ingest"

# Errors a retry of the same batch can cure (nobody's fault, no delivery counted).
TRANSIENT_SQL = (
    *UNAVAILABLE,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)

STAGING_COLUMNS = (  # the staging table's, in the order of ClickIngester._record
    "stream_id",
    "code",
    "url_id",
    "occurred_at",
    "referrer_host",
    "user_agent",
    "visitor_hash",
    "is_bot",
    "browser",
    "os",
    "device",
    "country",
)

_PREPARE = """
SET LOCAL client_min_messages = warning;
CREATE TEMP TABLE IF NOT EXISTS click_staging (
    stream_id text, code text, url_id bigint, occurred_at timestamptz, referrer_host text,
    user_agent text, visitor_hash text, is_bot boolean, browser text, os text, device text,
    country text
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS click_new (
    LIKE click_staging, first_visit boolean NOT NULL DEFAULT false
) ON COMMIT DELETE ROWS;
"""

# After COPY into click_staging: store, find the day's new visitors, roll up, count.
_MOVE = """
WITH inserted AS (
    INSERT INTO clicks (stream_id, url_id, occurred_at, referrer_host, user_agent, visitor_hash,
                        is_bot, browser, os, device, country)
    SELECT s.stream_id, u.id, s.occurred_at, nullif(s.referrer_host, ''),
           nullif(s.user_agent, ''), nullif(s.visitor_hash, ''), s.is_bot, s.browser, s.os,
           s.device, s.country
    FROM click_staging s
    JOIN urls u ON u.code = s.code AND (s.url_id IS NULL OR u.id = s.url_id)
    ON CONFLICT DO NOTHING
    RETURNING *
)
INSERT INTO click_new (stream_id, url_id, occurred_at, referrer_host, visitor_hash, is_bot,
                       browser, os, device, country)
SELECT stream_id, url_id, occurred_at, referrer_host, visitor_hash, is_bot, browser, os, device,
       country
FROM inserted;

WITH seen AS (
    INSERT INTO click_visitors (url_id, day, visitor_hash)
    SELECT DISTINCT url_id, (occurred_at AT TIME ZONE 'UTC')::date, visitor_hash
    FROM click_new WHERE visitor_hash IS NOT NULL
    ORDER BY 2, 1, 3
    ON CONFLICT DO NOTHING
    RETURNING url_id, day, visitor_hash
)
UPDATE click_new n SET first_visit = true
FROM (
    SELECT DISTINCT ON (c.url_id, s.day, c.visitor_hash) c.stream_id
    FROM click_new c
    JOIN seen s ON s.url_id = c.url_id AND s.visitor_hash = c.visitor_hash
               AND s.day = (c.occurred_at AT TIME ZONE 'UTC')::date
    ORDER BY c.url_id, s.day, c.visitor_hash, c.occurred_at
) AS first
WHERE n.stream_id = first.stream_id;

INSERT INTO click_rollups AS r (url_id, hour, dimension, value, is_bot, clicks, visitors)
SELECT n.url_id, date_trunc('hour', n.occurred_at, 'UTC'), d.dimension, d.value, n.is_bot,
       count(*), count(*) FILTER (WHERE n.first_visit)
FROM click_new n
CROSS JOIN LATERAL (VALUES
    ('', ''), ('referrer', coalesce(n.referrer_host, '')), ('country', coalesce(n.country, '')),
    ('browser', n.browser), ('os', n.os), ('device', n.device)
) AS d (dimension, value)
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 3, 2, 4, 5
ON CONFLICT (url_id, dimension, hour, value, is_bot) DO UPDATE
SET clicks = r.clicks + excluded.clicks, visitors = r.visitors + excluded.visitors;

UPDATE urls SET click_count = urls.click_count + n.clicks
FROM (SELECT url_id, count(*) AS clicks FROM click_new GROUP BY url_id ORDER BY url_id) AS n
WHERE urls.id = n.url_id;
"""


class NotAClick(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Click:
    stream_id: str
    code: str
    occurred_at: datetime
    referrer_host: str
    user_agent: str
    visitor_hash: str = ""
    network: str = ""
    url_id: int | None = None


def _text(fields: dict[bytes, bytes], name: bytes, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; nothing else in a header value needs care.
    return fields.get(name, b"").decode(errors="replace").replace("\x00", "")[:limit]


def parse_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Click:
    """The click an entry holds; NotAClick says what is wrong with one that holds none."""
    try:
        code = fields[b"code"].decode()
        url_id = int(fields[b"id"]) if b"id" in fields else None
        occurred_at = datetime.fromtimestamp(int(fields[b"ts"]) / 1000, UTC)
        origin = entry_origin(entry_id, fields)
    except KeyError as exc:
        raise NotAClick(f"field {exc.args[0]!r} missing") from None
    except (ValueError, OverflowError, OSError) as exc:
        raise NotAClick(f"bad value: {exc}") from None
    if not is_well_formed(code):
        raise NotAClick(f"not a short code: {code[:80]!r}")
    if url_id is not None and not 0 < url_id < 2**63:
        raise NotAClick(f"link id out of range: {url_id}")
    if not 2000 <= occurred_at.year < 10000:
        raise NotAClick(f"time out of range: {occurred_at.isoformat()}")
    return Click(
        stream_id=origin[:64],
        code=code,
        occurred_at=occurred_at,
        referrer_host=_text(fields, b"ref", 255),
        user_agent=_text(fields, b"ua", 512),
        visitor_hash=_text(fields, b"vh", 64),
        network=_text(fields, b"net", 64),
        url_id=url_id,
    )


class ClickIngester:
    """The ``ingest`` group's handler: stores clicks (see the module's docstring)."""

    def __init__(self, pool: asyncpg.Pool, geoip: GeoIP | None = None) -> None:
        self._pool = pool
        self._geoip = geoip or GeoIP(None)
        self._months: set[tuple[int, int]] = set()  # partitions known to exist

    def consumer(self, client: aredis.Redis, name: str, **options: Any) -> Consumer:
        return Consumer(client, STREAM, GROUP, name, self.handle, **options)

    async def handle(self, entries: list[Entry]) -> dict[bytes, Failure]:
        failures: dict[bytes, Failure] = {}
        clicks: list[tuple[bytes, Click]] = []
        for entry_id, fields in entries:
            try:
                clicks.append((entry_id, parse_entry(entry_id, fields)))
            except NotAClick as exc:
                failures[entry_id] = Failure(f"not a click: {exc}", permanent=True)
        if not clicks:
            return failures
        try:
            await self.store([click for _, click in clicks])
        except asyncpg.PostgresError as exc:
            if isinstance(exc, TRANSIENT_SQL):
                raise
            # Whatever PostgreSQL refused must not hold the others back: one at a time.
            log.warning("click batch refused (%s); storing one at a time", type(exc).__name__)
            for entry_id, click in clicks:
                try:
                    await self.store([click])
                except asyncpg.PostgresError as one:
                    if isinstance(one, TRANSIENT_SQL):
                        raise
                    failures[entry_id] = Failure(f"{type(one).__name__}: {one}")
        return failures

    async def store(self, clicks: list[Click]) -> int:
        """Store ``clicks`` in one transaction; return how many were new."""
        await self.ensure_partitions(clicks)
        records = [self._record(click) for click in clicks]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_PREPARE)
            await conn.copy_records_to_table(
                "click_staging", records=records, columns=STAGING_COLUMNS
            )
            await conn.execute(_MOVE)
            stored = int(await conn.fetchval("SELECT count(*) FROM click_new"))
        CLICKS_INGESTED.inc(stored)
        return stored

    def _record(self, click: Click) -> tuple[Any, ...]:
        agent = describe_agent(click.user_agent)
        return (
            click.stream_id,
            click.code,
            click.url_id,
            click.occurred_at,
            click.referrer_host,
            click.user_agent,
            click.visitor_hash,
            agent.is_bot,
            agent.browser,
            agent.os,
            agent.device,
            self._geoip.country(click.network),
        )

    async def ensure_partitions(self, clicks: list[Click]) -> None:
        missing = {(c.occurred_at.year, c.occurred_at.month) for c in clicks} - self._months
        for year, month in sorted(missing):
            await self._pool.execute(
                "SELECT shorty_click_partition($1)", datetime(year, month, 1, tzinfo=UTC)
            )
            self._months.add((year, month))

    def forget_partitions(self) -> None:
        """Partitions may have been dropped (retention): check again before writing."""
        self._months.clear()
