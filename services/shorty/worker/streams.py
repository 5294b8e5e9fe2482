"""Reading a Redis stream through a consumer group, with retries and dead letters.

A ``Consumer`` hands batches of entries to a handler and acknowledges what the
handler accepted. The handler answers in one of three ways:

- it returns normally: every entry not in the returned mapping is done;
- an entry in the mapping failed: it stays pending and is tried again after an
  exponential backoff with full jitter, by this consumer (XCLAIM, which counts
  the delivery). An entry that fails on its ``max_deliveries``-th delivery, or
  whose failure is marked permanent, moves to the dead-letter stream with the
  error, where ``shorty dlq`` can show and replay it;
- it raises (PostgreSQL or Redis unreachable): the same batch is handed over
  again, from memory, once the caller's backoff is over. An outage is nobody's
  fault, so it costs an entry none of its deliveries. A command Redis refuses
  for good (say WRONGTYPE) is no outage: it fails each entry of the batch.

Entries left pending by a consumer that died are claimed (XAUTOCLAIM) once idle
for ``claim_idle_ms``. One that has already been delivered ``max_deliveries``
times (it may be what killed its consumers) goes straight to the dead letters.

What a consumer holds in memory is bounded: one batch (``batch`` entries, the
COUNT of each read) and the failed entries waiting for their retry, at most
``max_retrying``. At that many it reads no new entries and claims none until
retries are done or dead: the new ones wait in the stream (its lag shows them,
``shorty_stream_held_back_total`` counts the skipped reads) instead of piling up
in the process while every entry fails.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aredis
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import AttributeValue
from redis.exceptions import (
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from shorty.obs import tracing
from shorty.obs.messagespans import message_span
from shorty.obs.metrics import STREAM_BATCH, STREAM_ENTRIES, STREAM_HELD_BACK
from shorty.resilience.retry import full_jitter

log = logging.getLogger(__name__)

DLQ = "shorty:dlq"
# Fields the dead-letter stream adds to the entry's own (which it keeps as they were).
DLQ_STREAM, DLQ_GROUP, DLQ_ID = b"dlq:stream", b"dlq:group", b"dlq:id"
DLQ_ERROR, DLQ_DELIVERIES, DLQ_AT = b"dlq:error", b"dlq:deliveries", b"dlq:at"
# A replayed entry carries the ID it had first, so idempotent consumers still know it.
ORIGIN = b"origin"
CLAIM_EVERY = 5.0  # seconds between looks for entries of dead consumers
# Refusals that pass (a replica not promoted yet, memory full, a cluster moving
# slots): outages, not the entries' fault.
_PASSING_REFUSALS = (ReadOnlyError, OutOfMemoryError, ClusterDownError, TryAgainError)

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Failure:
    error: str
    permanent: bool = False  # no retry can help (a malformed entry)


Handler = Callable[[list[Entry]], Awaitable[dict[bytes, Failure]]]


def entry_origin(entry_id: bytes, fields: dict[bytes, bytes]) -> str:
    """The ID an entry had when it was first written (replays keep it in ``origin``)."""
    return (fields.get(ORIGIN) or entry_id).decode()


class Consumer:
    def __init__(
        self,
        client: aredis.Redis,
        stream: str,
        group: str,
        name: str,
        handler: Handler,
        *,
        batch: int = 500,
        max_deliveries: int = 5,
        max_retrying: int = 5000,
        claim_idle_ms: int = 60_000,
        retry_base: float = 1.0,
        retry_cap: float = 60.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._redis = client
        self.stream = stream
        self.group = group
        self.name = name
        self._handler = handler
        self.batch = batch
        self.max_deliveries = max_deliveries
        self.max_retrying = max(1, max_retrying)
        self._held_back = False  # the retry set is full (logged once per time)
        self._claim_idle_ms = claim_idle_ms
        self._retry_base = retry_base
        # A retry must come before the entry looks abandoned to the other consumers.
        self._retry_cap = min(retry_cap, claim_idle_ms / 1000 / 2)
        self._rand = rand
        self._inflight: list[Entry] | None = None
        self._retry_at: dict[bytes, float] = {}  # failed entry -> when to try it again
        self._recover: bytes | str | None = "0"  # what this name held before a restart
        self._next_claim = 0.0
        self._claim_from = "0-0"  # XAUTOCLAIM's cursor: where the last scan stopped
        self._tracer = tracing.current().tracer(__name__)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self, block_ms: int = 1000) -> int:
        """Handle one batch; return how many entries it held (0: none waiting)."""
        if self._inflight is None:
            self._inflight = await self._next(block_ms)
        entries = self._inflight
        if entries:
            STREAM_BATCH.labels(self.stream, self.group).observe(len(entries))
            with self._process_span(entries) as span:
                try:
                    failures = await self._handler(entries)
                except ResponseError as exc:
                    if isinstance(exc, _PASSING_REFUSALS):
                        raise
                    failures = {i: Failure(f"{type(exc).__name__}: {exc}") for i, _ in entries}
                if failures:
                    span.set_attribute("shorty.stream.failed", len(failures))
                await self._settle(entries, failures)
        self._inflight = None
        return len(entries)

    def _process_span(self, entries: list[Entry]) -> AbstractContextManager[Span]:
        """The batch's CONSUMER span, continuing the traces its entries carry."""
        carried = [fields.get(b"traceparent", b"").decode("latin-1") for _, fields in entries]
        attributes: dict[str, AttributeValue] = {
            "messaging.consumer.group.name": self.group,
            "messaging.client.id": self.name,
        }
        if len(entries) == 1:
            attributes["messaging.message.id"] = entries[0][0].decode()
        return message_span(
            self._tracer, "process", self.stream, SpanKind.CONSUMER, carried, attributes
        )

    def retry_due_in(self) -> float | None:
        """Seconds until the next failed entry is due again (None: none waiting)."""
        if not self._retry_at:
            return None
        return max(0.0, min(self._retry_at.values()) - time.monotonic())

    async def _next(self, block_ms: int) -> list[Entry]:
        if self._recover is not None:
            # One pass over what this name held before a restart, page by page (each
            # read counts a delivery, so an entry is read once, not until it is gone).
            reply: Any = await self._redis.xreadgroup(
                self.group, self.name, {self.stream: self._recover}, count=self.batch
            )
            held = reply[0][1] if reply else []
            self._recover = held[-1][0] if held else None
            entries = [e for e in await self._present(held) if e[0] not in self._retry_at]
            if entries:
                return entries
        now = time.monotonic()
        due: list[Any] = [i for i, at in self._retry_at.items() if at <= now][: self.batch]
        if due:
            claimed: Any = await self._redis.xclaim(
                self.stream, self.group, self.name, min_idle_time=0, message_ids=due
            )
            for entry_id in due:  # claimed now: its next failure schedules it again
                del self._retry_at[entry_id]
            entries = await self._present(claimed, expected=due)
            if entries:
                return entries
        # Wait no longer than the next retry is due.
        wait = self.retry_due_in()
        block = block_ms if wait is None else max(1, min(block_ms, int(wait * 1000)))
        room = self.max_retrying - len(self._retry_at)  # each entry read may fail
        if not self._has_room(room):
            await asyncio.sleep(block / 1000)
            return []
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + CLAIM_EVERY
            entries = await self._claim_abandoned(min(self.batch, room))
            if entries:
                return entries
        reply = await self._redis.xreadgroup(
            self.group, self.name, {self.stream: ">"}, count=min(self.batch, room), block=block
        )
        return list(reply[0][1]) if reply else []

    def _has_room(self, room: int) -> bool:
        """Whether new entries may be read; says so when that changes."""
        full = room <= 0
        if full:
            STREAM_HELD_BACK.labels(self.stream, self.group).inc()
        if full != self._held_back:
            self._held_back = full
            if full:
                log.warning(
                    "%s (%s): %d failed entries wait for their retry (SHORTY_MAX_RETRYING);"
                    " no new entries are read until some are done",
                    self.stream,
                    self.group,
                    len(self._retry_at),
                )
            else:
                log.info("%s (%s): reading new entries again", self.stream, self.group)
        return not full

    async def _claim_abandoned(self, count: int) -> list[Entry]:
        reply: Any = await self._redis.xautoclaim(
            self.stream,
            self.group,
            self.name,
            self._claim_idle_ms,
            start_id=self._claim_from,
            count=count,
        )
        # Redis scans a bounded part of the pending list per call: go on from there
        # next time ("0-0" again once the end is reached).
        self._claim_from = reply[0]
        entries = await self._present(reply[1])
        if not entries:
            return []
        log.warning(
            "claimed %d entries of %s left by a stopped consumer", len(entries), self.stream
        )
        counts = await self._deliveries([entry_id for entry_id, _ in entries])
        worn = {
            entry_id: Failure(f"delivered {counts[entry_id]} times without being acknowledged")
            for entry_id, _ in entries
            if counts.get(entry_id, 0) > self.max_deliveries
        }
        if worn:
            await self._settle([e for e in entries if e[0] in worn], worn, counts)
        return [e for e in entries if e[0] not in worn]

    async def _present(self, entries: Any, expected: list[bytes] | None = None) -> list[Entry]:
        """The entries still in the stream; acknowledge those trimmed or deleted meanwhile."""
        present = [(i, f) for i, f in entries if i is not None and f]
        gone = {i for i, f in entries if i is not None and not f}
        if expected is not None:
            gone |= set(expected) - {i for i, _ in present}
        elif any(i is None for i, _ in entries):
            # Redis 6 answers a claim of a deleted entry with nil and no ID: find them.
            gone |= await self._vanished({i for i, _ in present})
        if gone:
            await self._redis.xack(self.stream, self.group, *gone)
        return present

    async def _vanished(self, known: set[bytes]) -> set[bytes]:
        """This consumer's pending entries that are no longer in the stream."""
        pending: Any = await self._redis.xpending_range(
            self.stream, self.group, min="-", max="+", count=self.batch, consumername=self.name
        )
        candidates = [p["message_id"] for p in pending if p["message_id"] not in known]
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in candidates:
                pipe.xrange(self.stream, min=entry_id, max=entry_id, count=1)
            found = await pipe.execute()
        return {entry_id for entry_id, hit in zip(candidates, found, strict=True) if not hit}

    async def _deliveries(self, ids: list[bytes]) -> dict[bytes, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        return {
            reply[0]["message_id"]: int(reply[0]["times_delivered"]) for reply in replies if reply
        }

    async def _settle(
        self,
        entries: list[Entry],
        failures: dict[bytes, Failure],
        counts: dict[bytes, int] | None = None,
    ) -> None:
        """Acknowledge what succeeded; schedule or bury what failed."""
        done = [entry_id for entry_id, _ in entries if entry_id not in failures]
        dead: list[tuple[Entry, Failure, int]] = []
        if failures:
            counts = counts or await self._deliveries(list(failures))
            for entry in entries:
                failure = failures.get(entry[0])
                if failure is None:
                    continue
                count = counts.get(entry[0], self.max_deliveries)
                if failure.permanent or count >= self.max_deliveries:
                    dead.append((entry, failure, count))
                else:
                    delay = full_jitter(count, self._retry_base, self._retry_cap, self._rand)
                    self._retry_at[entry[0]] = time.monotonic() + delay
                    log.warning(
                        "%s entry %s failed (delivery %d of %d), retrying in %.1f s: %s",
                        self.stream,
                        entry[0].decode(),
                        count,
                        self.max_deliveries,
                        delay,
                        failure.error,
                    )
        async with self._redis.pipeline(transaction=True) as pipe:
            for (entry_id, fields), failure, count in dead:
                letter = {
                    **fields,
                    DLQ_STREAM: self.stream.encode(),
                    DLQ_GROUP: self.group.encode(),
                    DLQ_ID: entry_id,
                    DLQ_ERROR: failure.error[:2000].encode(),
                    DLQ_DELIVERIES: str(count).encode(),
                    DLQ_AT: str(int(time.time() * 1000)).encode(),
                }
                pipe.xadd(DLQ, letter)  # type: ignore[arg-type]
            acked = done + [entry[0] for entry, _, _ in dead]
            if acked:
                pipe.xack(self.stream, self.group, *acked)
            await pipe.execute()
        for entry, failure, count in dead:
            log.error(
                "%s entry %s moved to %s after %d deliveries: %s",
                self.stream,
                entry[0].decode(),
                DLQ,
                count,
                failure.error,
            )
        metric = STREAM_ENTRIES
        metric.labels(self.stream, self.group, "done").inc(len(done))
        metric.labels(self.stream, self.group, "retried").inc(len(failures) - len(dead))
        metric.labels(self.stream, self.group, "dead").inc(len(dead))

    async def leave(self) -> None:
        """Remove this consumer from the group if it holds no pending entries
        (so consumer names do not pile up across restarts)."""
        pending: Any = await self._redis.xpending_range(
            self.stream, self.group, min="-", max="+", count=1, consumername=self.name
        )
        if not pending:
            await self._redis.xgroup_delconsumer(self.stream, self.group, self.name)
