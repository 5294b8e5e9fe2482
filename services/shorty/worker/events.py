"""Link events: the outbox relay and the cache updater.

Every link change commits an ``outbox`` row in its own transaction. The relay
publishes unpublished rows, oldest first, to the ``shorty:events`` stream and
marks them published. One relay works at a time (a transaction-scoped
advisory lock; the others skip their turn), so events leave in the order they
were written, which keeps them in order per link. A crash between publishing
and marking publishes a row twice; the consumers do not mind.

The ``cache`` group applies each event to the cache: the Redis copy is
dropped, the code's generation bumped and every redirect replica told to drop
its own. The API does the same at once when it can; this is the path that
holds when Redis was away at the time of the change.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aredis
from opentelemetry.trace import SpanKind

from shorty.cache.links import LinkCache
from shorty.obs import tracing
from shorty.obs.messagespans import message_span
from shorty.obs.metrics import OUTBOX_PUBLISHED
from shorty.worker.streams import Consumer, Entry, Failure

log = logging.getLogger(__name__)

EVENTS = "shorty:events"
EVENTS_MAXLEN = 100_000  # approximate; the outbox keeps the history, the stream the news
CACHE_GROUP = "cache"
RELAY_LOCK = 0x5E1A7  # advisory lock key: one relay at a time

_TAKE = """
SELECT id, aggregate_type, aggregate_id, event_type, payload::text AS payload, traceparent,
       created_at
FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1
"""


_BACKLOG = """
SELECT count(*) AS events,
       coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0) AS oldest_age
FROM outbox WHERE published_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class Backlog:
    events: int  # not yet published
    oldest_age: float  # seconds since the oldest of them was written (0: none)


class OutboxRelay:
    def __init__(self, pool: asyncpg.Pool, client: aredis.Redis, *, batch: int = 500) -> None:
        self._pool = pool
        self._redis = client
        self.batch = batch
        self._tracer = tracing.current().tracer(__name__)

    async def step(self) -> int:
        """Publish one batch; return how many events (0: nothing waiting, or another
        relay is at work)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
                return 0
            rows = await conn.fetch(_TAKE, self.batch)
            if not rows:
                return 0
            # Each event keeps the traceparent of the request that wrote it.
            carried = [row["traceparent"] or "" for row in rows]
            with message_span(self._tracer, "send", EVENTS, SpanKind.CLIENT, carried, {}) as span:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for row in rows:
                        fields: dict[Any, Any] = event_fields(row)
                        pipe.xadd(EVENTS, fields, maxlen=EVENTS_MAXLEN, approximate=True)
                    ids = await pipe.execute()
                if len(ids) == 1:
                    span.set_attribute("messaging.message.id", ids[0].decode())
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                    [row["id"] for row in rows],
                )
        OUTBOX_PUBLISHED.inc(len(rows))
        return len(rows)

    async def waiting(self) -> int:
        return (await self.backlog()).events

    async def backlog(self) -> Backlog:
        """How many events wait to be published, and how long the oldest has."""
        row = await self._pool.fetchrow(_BACKLOG)
        return Backlog(int(row["events"]), max(float(row["oldest_age"]), 0.0))

    async def prune(self, keep_days: int) -> int:
        """Delete published rows older than ``keep_days``; return how many."""
        status = await self._pool.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(days => $1)",
            keep_days,
        )
        return int(status.split()[-1])


def event_fields(row: asyncpg.Record | dict[str, Any]) -> dict[str, str]:
    """The stream entry for one outbox row."""
    return {
        "outbox_id": str(row["id"]),
        "type": row["event_type"],
        "aggregate": row["aggregate_type"],
        "key": row["aggregate_id"],
        "payload": row["payload"],
        "traceparent": row["traceparent"] or "",
        "at": row["created_at"].isoformat(),
    }


class CacheUpdater:
    """The ``cache`` group's handler."""

    def __init__(self, cache: LinkCache) -> None:
        self._cache = cache

    def consumer(self, client: aredis.Redis, name: str, **options: Any) -> Consumer:
        return Consumer(client, EVENTS, CACHE_GROUP, name, self.handle, **options)

    async def handle(self, entries: list[Entry]) -> dict[bytes, Failure]:
        failures: dict[bytes, Failure] = {}
        codes: list[str] = []
        for entry_id, fields in entries:
            try:
                codes.extend(codes_of(fields))
            except ValueError as exc:
                failures[entry_id] = Failure(f"not a link event: {exc}", permanent=True)
        # Redis errors propagate: the batch is handed over again once Redis is back.
        await self._cache.invalidate_many(list(dict.fromkeys(codes)))
        if log.isEnabledFor(logging.DEBUG):  # the traces the events belong to
            traces = [f.get(b"traceparent", b"").decode(errors="replace") for _, f in entries]
            log.debug("applied %d link events", len(entries), extra={"shorty.traceparents": traces})
        return failures


def codes_of(fields: dict[bytes, bytes]) -> list[str]:
    """The short codes an event touches (none for events of other aggregates)."""
    if fields.get(b"aggregate", b"link") != b"link":
        return []
    try:
        key = fields[b"key"].decode()
        payload = json.loads(fields.get(b"payload", b"{}"))
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    if not isinstance(payload, dict) or not key:
        raise ValueError("payload is not an object, or the key is empty")
    return [key]
