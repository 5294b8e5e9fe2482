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

from shorty.redirect.clicks import STREAM

log = logging.getLogger(__name__)

GROUP = "ingest"
BATCH = 500
CLAIM_IDLE_MS = 60_000

_STORE = """
WITH incoming AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[])
        AS i (stream_id, code, occurred_at, referrer_host, user_agent)
), inserted AS (
    INSERT INTO clicks (stream_id, url_id, occurred_at, referrer_host, user_agent)
    SELECT i.stream_id, u.id, i.occurred_at, nullif(i.referrer_host, ''), nullif(i.user_agent, '')
    FROM incoming i JOIN urls u ON u.code = i.code
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


def parse_entry(stream_id: bytes, fields: dict[bytes, bytes]) -> Click | None:
    """A Click, or None for an entry that does not hold one (it is dropped)."""
    try:
        return Click(
            stream_id=stream_id.decode(),
            code=fields[b"code"].decode(),
            occurred_at=datetime.fromtimestamp(int(fields[b"ts"]) / 1000, UTC),
            referrer_host=fields.get(b"ref", b"").decode(errors="replace")[:255],
            user_agent=fields.get(b"ua", b"").decode(errors="replace")[:512],
        )
    except (KeyError, ValueError, OverflowError, OSError):
        return None


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
            counted = await self._pool.fetchval(
                _STORE,
                [c.stream_id for c in clicks],
                [c.code for c in clicks],
                [c.occurred_at for c in clicks],
                [c.referrer_host for c in clicks],
                [c.user_agent for c in clicks],
            )
        await self._redis.xack(STREAM, GROUP, *[entry_id for entry_id, _ in entries])
        return int(counted)
