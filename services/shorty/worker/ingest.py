"""Click ingestion: ``shorty:clicks`` entries -> ``clicks`` rows and ``click_count``.

A batch is enriched (browser, OS, device, bot, country) and stored in one
transaction: the raw rows into their month's partition with COPY, each marked
with the transaction's ID (``ingest_xact``: how the rollup aggregator finds
them, see ``shorty.worker.rollup``), and ``urls.click_count``. The consumer
acknowledges the entries only after that commits. The raw row's key is the
click's id with its time (``click_id``, ``occurred_at``): the id the redirect gave
it (``cid``), which every copy of the click carries, whatever its entry ID; an
entry written before there were click ids is known by its stream ID instead (its
first ID, for a replayed entry). So a click delivered twice, or written twice,
counts once: a batch that meets a click stored before is rolled back and stored
again through a staging table that keeps only the new clicks.

An entry that is not a click is a permanent failure (dead-letter stream at
once); a click PostgreSQL refuses fails on its own, after the batch is retried
one click at a time, and goes to the dead letters after its last delivery.
A click for a link deleted since is dropped without a trace, like the link's
other clicks; so is one older than the click retention (see ``_recent``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

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
CLICK_ID = b"cid"  # the field with the click's own id (see shorty.redirect.clicks)

# Errors a retry of the same batch can cure (nobody's fault, no delivery counted).
TRANSIENT_SQL = (
    *UNAVAILABLE,
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.LockNotAvailableError,
)

CLICK_COLUMNS = (  # the raw table's, in the order of ClickIngester.row (+ ingest_xact)
    "click_id",
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
_XACT = "SELECT pg_current_xact_id()::text::bigint"  # the storing transaction, for the rollups
# Links are locked in ID order first: two consumers counting overlapping links in
# whatever order their plans visit them could deadlock.
_LOCK = "SELECT FROM urls WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE"
_COUNT = """
UPDATE urls SET click_count = urls.click_count + c.clicks
FROM unnest($1::bigint[], $2::bigint[]) AS c (id, clicks)
WHERE urls.id = c.id
"""

# The careful way, for a batch holding a click stored before (a redelivery), a link
# deleted meanwhile or an entry without a link ID: the same rows through a staging
# table, new clicks of existing links only.
_STAGE = """
SET LOCAL client_min_messages = warning;
CREATE TEMP TABLE IF NOT EXISTS click_staging (
    code text, click_id text, url_id bigint, occurred_at timestamptz, referrer_host text,
    user_agent text, visitor_hash text, is_bot boolean, browser text, os text, device text,
    country text
) ON COMMIT DELETE ROWS;
"""
STAGING_COLUMNS = ("code", *CLICK_COLUMNS)
_MERGE = """
WITH inserted AS (
    INSERT INTO clicks (click_id, url_id, occurred_at, referrer_host, user_agent, visitor_hash,
                        is_bot, browser, os, device, country, ingest_xact)
    SELECT s.click_id, u.id, s.occurred_at, s.referrer_host, s.user_agent, s.visitor_hash,
           s.is_bot, s.browser, s.os, s.device, s.country, pg_current_xact_id()::text::bigint
    FROM click_staging s
    JOIN urls u ON u.code = s.code AND (s.url_id IS NULL OR u.id = s.url_id)
    ON CONFLICT DO NOTHING
    RETURNING url_id
)
SELECT url_id, count(*) AS clicks FROM inserted GROUP BY url_id
"""


class NotAClick(ValueError):
    pass


_COPY_COLUMNS = (*CLICK_COLUMNS, "ingest_xact")


class Click(NamedTuple):  # a tuple: made 50,000 times a second, it must be cheap
    click_id: str  # the redirect's id for it, else its (first) stream entry ID
    code: str
    occurred_at: datetime
    referrer_host: str
    user_agent: str
    visitor_hash: str = ""
    network: str = ""
    url_id: int | None = None


async def _count(conn: asyncpg.Connection, clicks: Mapping[int, int]) -> None:
    """Add ``clicks`` (link ID -> new clicks) to the links' ``click_count``."""
    links = sorted(clicks)
    await conn.execute(_LOCK, links)
    await conn.execute(_COUNT, links, [clicks[link] for link in links])


def _text(fields: dict[bytes, bytes], name: bytes, limit: int) -> str:
    raw = fields.get(name)
    if not raw:
        return ""
    if b"\x00" in raw:  # PostgreSQL text cannot hold NUL; nothing else needs care
        raw = raw.replace(b"\x00", b"")
    text = raw.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit]


def parse_entry(entry_id: bytes, fields: dict[bytes, bytes]) -> Click:
    """The click an entry holds; NotAClick says what is wrong with one that holds none."""
    try:
        code = fields[b"code"].decode()
        url_id = int(fields[b"id"]) if b"id" in fields else None
        occurred_at = datetime.fromtimestamp(int(fields[b"ts"]) / 1000, UTC)
        cid = fields.get(CLICK_ID)
        click_id = cid.decode() if cid is not None else entry_origin(entry_id, fields)[:64]
    except KeyError as exc:
        raise NotAClick(f"field {exc.args[0]!r} missing") from None
    except (ValueError, OverflowError, OSError) as exc:
        raise NotAClick(f"bad value: {exc}") from None
    if not is_well_formed(code):
        raise NotAClick(f"not a short code: {code[:80]!r}")
    if cid is not None and not 0 < len(click_id) <= 64:
        raise NotAClick(f"bad click id: {click_id[:80]!r}")
    if url_id is not None and not 0 < url_id < 2**63:
        raise NotAClick(f"link id out of range: {url_id}")
    if not 2000 <= occurred_at.year < 10000:
        raise NotAClick(f"time out of range: {occurred_at.isoformat()}")
    return Click(  # positional: keywords cost as much again
        click_id,
        code,
        occurred_at,
        _text(fields, b"ref", 255),
        _text(fields, b"ua", 512),
        _text(fields, b"vh", 64),
        _text(fields, b"net", 64),
        url_id,
    )


class ClickIngester:
    """The ``ingest`` group's handler: stores clicks (see the module's docstring)."""

    def __init__(
        self, pool: asyncpg.Pool, geoip: GeoIP | None = None, retention_days: int = 0
    ) -> None:
        self._pool = pool
        self._geoip = geoip or GeoIP(None)
        self._retention_days = retention_days
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
        """Store ``clicks`` in one transaction; return how many were new.

        The raw rows go straight into ``clicks`` with COPY, and the counts follow.
        Should that meet a click stored before (a redelivery) or a link deleted
        meanwhile, the transaction is rolled back and the batch goes the careful
        way (staging table, new clicks of existing links only)."""
        clicks = self._recent(clicks)
        if not clicks:
            return 0
        rows = [self.row(click) for click in clicks]
        await self.ensure_partitions(clicks)
        async with self._pool.acquire() as conn:
            try:
                stored = await self._store(conn, clicks, rows)
            except asyncpg.CheckViolationError as exc:
                if "no partition" not in str(exc):
                    raise
                # Another worker's retention dropped a partition this one knew of: the
                # clicks are recent (see _recent), so it is needed again.
                self.forget_partitions()
                await self.ensure_partitions(clicks)
                stored = await self._store(conn, clicks, rows)
        CLICKS_INGESTED.inc(stored)
        return stored

    async def _store(
        self, conn: asyncpg.Connection, clicks: list[Click], rows: list[tuple[Any, ...]]
    ) -> int:
        if all(click.url_id is not None for click in clicks):
            try:
                return await self._copy(conn, rows)
            except (asyncpg.UniqueViolationError, asyncpg.ForeignKeyViolationError):
                pass  # a click stored before, or a link deleted meanwhile: rolled back
        return await self._merge(conn, clicks, rows)

    async def _copy(self, conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> int:
        async with conn.transaction():
            xact = await conn.fetchval(_XACT)
            await conn.copy_records_to_table(
                "clicks", records=[(*row, xact) for row in rows], columns=_COPY_COLUMNS
            )
            # Last: a hot link's row stays locked from here to the commit only.
            await _count(conn, Counter(row[1] for row in rows))
        return len(rows)

    async def _merge(
        self, conn: asyncpg.Connection, clicks: list[Click], rows: list[tuple[Any, ...]]
    ) -> int:
        staged = [(click.code, *row) for click, row in zip(clicks, rows, strict=True)]
        async with conn.transaction():
            await conn.execute(_STAGE)
            await conn.copy_records_to_table(
                "click_staging", records=staged, columns=STAGING_COLUMNS
            )
            counts = {row["url_id"]: row["clicks"] for row in await conn.fetch(_MERGE)}
            await _count(conn, counts)
        return sum(counts.values())

    def row(self, click: Click) -> tuple[Any, ...]:
        """The click's raw row (``CLICK_COLUMNS``), enriched; ``url_id`` as the entry
        gave it (None if it gave none). The ID names the link: IDs are never reused
        and codes never change, so a link that exists is the one clicked."""
        agent = describe_agent(click.user_agent)
        return (
            click.click_id,
            click.url_id,
            click.occurred_at,
            click.referrer_host or None,
            click.user_agent or None,
            click.visitor_hash or None,
            agent.is_bot,
            agent.browser,
            agent.os,
            agent.device,
            self._geoip.country(click.network),
        )

    def _recent(self, clicks: list[Click]) -> list[Click]:
        """The clicks whose month is still kept. An older one can only be a replay or
        a very late redelivery of a click counted long ago: its raw row and the key
        that would recognise it went with its partition, so it is left out rather
        than counted twice."""
        if self._retention_days <= 0:
            return clicks
        # Retention drops a month once the whole of it is past the horizon: the month
        # holding the horizon is the oldest kept.
        horizon = datetime.now(UTC) - timedelta(days=self._retention_days)
        oldest = datetime(horizon.year, horizon.month, 1, tzinfo=UTC)
        recent = [c for c in clicks if c.occurred_at >= oldest]
        if len(recent) < len(clicks):
            log.warning(
                "%d clicks older than the %d-day retention left out",
                len(clicks) - len(recent),
                self._retention_days,
            )
        return recent

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
