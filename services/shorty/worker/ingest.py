"""Click ingestion: ``shorty:clicks`` stream entries -> ``clicks`` rows + ``click_count``.

Entries are read through a consumer group and acknowledged only after the
transaction that stores them commits. Each row keeps its stream entry ID
under a unique index, so an entry delivered twice is counted once.
Entries left pending by a consumer that died are claimed after ``CLAIM_IDLE_MS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis.asyncio as aredis
from redis.exceptions import ResponseError

from shorty.core.bots import is_bot
from shorty.core.codes import is_well_formed
from shorty.redirect.clicks import STREAM
from shorty.store.errors import UNAVAILABLE

log = logging.getLogger(__name__)

GROUP = "ingest"
BATCH = 500
CLAIM_IDLE_MS = 60_000

_STORE = """
WITH incoming AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
        $7::bool[], $8::bigint[]
    ) AS i (stream_id, code, occurred_at, referrer_host, user_agent, visitor_hash, is_bot, url_id)
), inserted AS (
    INSERT INTO clicks
        (stream_id, url_id, occurred_at, referrer_host, user_agent, visitor_hash, is_bot)
    SELECT i.stream_id, u.id, i.occurred_at, nullif(i.referrer_host, ''),
           nullif(i.user_agent, ''), nullif(i.visitor_hash, ''), i.is_bot
    FROM incoming i
    JOIN urls u ON u.code = i.code AND (i.url_id IS NULL OR u.id = i.url_id)
    ON CONFLICT (stream_id) DO NOTHING
    RETURNING url_id
), counted AS (
    UPDATE urls SET click_count = urls.click_count + n.clicks
    FROM (SELECT url_id, count(*) AS clicks FROM inserted GROUP BY url_id) AS n
    WHERE urls.id = n.url_id
    RETURNING n.clicks
)
SELECT coalesce(sum(clicks), 0) FROM counted
"""


@dataclass(frozen=True, slots=True)
class Click:
    stream_id: str
    code: str
    occurred_at: datetime
    referrer_host: str
    user_agent: str
    visitor_hash: str = ""
    is_bot: bool = False
    url_id: int | None = None


def _text(fields: dict[bytes, bytes], name: bytes, limit: int) -> str:
    # PostgreSQL text cannot hold NUL; nothing else in a header value needs care.
    return fields.get(name, b"").decode(errors="replace").replace("\x00", "")[:limit]


def parse_entry(stream_id: bytes, fields: dict[bytes, bytes]) -> Click | None:
    """A Click, or None for an entry that does not hold one (it is dropped)."""
    try:
        code = fields[b"code"].decode()
        url_id = int(fields[b"id"]) if b"id" in fields else None
        click = Click(
            stream_id=stream_id.decode(),
            code=code,
            occurred_at=datetime.fromtimestamp(int(fields[b"ts"]) / 1000, UTC),
            referrer_host=_text(fields, b"ref", 255),
            user_agent=_text(fields, b"ua", 512),
            visitor_hash=_text(fields, b"vh", 64),
            is_bot=is_bot(_text(fields, b"ua", 512)),
            url_id=url_id,
        )
    except (KeyError, ValueError, OverflowError, OSError):
        return None
    if not is_well_formed(code) or (url_id is not None and not 0 < url_id < 2**63):
        return None
    return click


class ClickIngester:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: aredis.Redis,
        consumer: str,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self._pool = pool
        self._redis = client
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self, block_ms: int = 1000) -> int:
        """Ingest one batch; return how many clicks it counted."""
        entries = await self._claim()
        if not entries:
            reply: Any = await self._redis.xreadgroup(
                GROUP, self._consumer, {STREAM: ">"}, count=BATCH, block=block_ms
            )
            entries = reply[0][1] if reply else []
        if not entries:
            return 0
        return await self.ingest(entries)

    async def _claim(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        # Our own pending entries first (a crash between commit and ack), then
        # those of consumers idle for longer than ``claim_idle_ms``.
        own: Any = await self._redis.xreadgroup(GROUP, self._consumer, {STREAM: "0"}, count=BATCH)
        if own and own[0][1]:
            return list(own[0][1])
        reply: Any = await self._redis.xautoclaim(
            STREAM, GROUP, self._consumer, self._claim_idle_ms, start_id="0-0", count=BATCH
        )
        claimed = reply[1]
        return [entry for entry in claimed if entry[1] is not None]

    async def ingest(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> int:
        """Store ``entries`` in one transaction, then acknowledge them; return clicks counted."""
        clicks = [c for c in (parse_entry(i, f) for i, f in entries) if c is not None]
        if len(clicks) < len(entries):
            log.warning("dropped %d malformed click entries", len(entries) - len(clicks))
        counted = 0
        if clicks:
            try:
                counted = await self._store(clicks)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, UNAVAILABLE):
                    raise
                # One entry PostgreSQL refuses must not stall the stream: store the
                # batch one by one and drop (log) the ones refused.
                log.warning("batch refused (%s); storing clicks one by one", type(exc).__name__)
                counted = await self._store_each(clicks)
        await self._redis.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        return counted

    async def _store(self, clicks: list[Click]) -> int:
        counted = await self._pool.fetchval(
            _STORE,
            [c.stream_id for c in clicks],
            [c.code for c in clicks],
            [c.occurred_at for c in clicks],
            [c.referrer_host for c in clicks],
            [c.user_agent for c in clicks],
            [c.visitor_hash for c in clicks],
            [c.is_bot for c in clicks],
            [c.url_id for c in clicks],
        )
        return int(counted)

    async def _store_each(self, clicks: list[Click]) -> int:
        counted = 0
        for click in clicks:
            try:
                counted += await self._store([click])
            except asyncpg.PostgresError as exc:
                if isinstance(exc, UNAVAILABLE):
                    raise
                log.error("click %s dropped: %s", click.stream_id, exc)
        return counted

    async def leave(self) -> None:
        """Remove this consumer from the group if it holds no pending entries
        (so consumer names do not pile up across restarts)."""
        pending: Any = await self._redis.xpending_range(
            STREAM, GROUP, min="-", max="+", count=1, consumername=self._consumer
        )
        if not pending:
            await self._redis.xgroup_delconsumer(STREAM, GROUP, self._consumer)
