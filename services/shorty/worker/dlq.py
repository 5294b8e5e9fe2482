"""The dead-letter stream: what ``shorty dlq list|show|replay|purge`` works on.

A letter is the failed entry's own fields plus ``dlq:*`` fields saying where it
came from, why it failed and after how many deliveries. Replaying writes the
entry back to its stream with ``origin`` set to its first ID (so an idempotent
consumer still recognises it) and removes the letter, both in one transaction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aredis

from shorty.worker.streams import (
    DLQ,
    DLQ_AT,
    DLQ_DELIVERIES,
    DLQ_ERROR,
    DLQ_GROUP,
    DLQ_ID,
    DLQ_STREAM,
    ORIGIN,
)

# A stream entry ID: ASCII digits (\d would take other scripts' digits too), each part
# within Redis's 64 bits (19 digits always are).
LETTER_ID = re.compile(r"[0-9]{1,19}(-[0-9]{1,19})?")
# Streams a letter may be replayed into (a damaged letter must not write elsewhere).
REPLAYABLE = frozenset({"shorty:clicks", "shorty:events"})


@dataclass(frozen=True, slots=True)
class Letter:
    id: str
    stream: str
    group: str
    entry_id: str
    error: str
    deliveries: int
    failed_at: datetime | None
    fields: dict[bytes, bytes]  # the entry's own fields, as they were

    def describe(self) -> dict[str, Any]:
        """The letter as plain JSON-able values (fields decoded for reading)."""
        return {
            "id": self.id,
            "stream": self.stream,
            "group": self.group,
            "entry_id": self.entry_id,
            "error": self.error,
            "deliveries": self.deliveries,
            "failed_at": self.failed_at.isoformat() if self.failed_at else None,
            "fields": {
                k.decode(errors="backslashreplace"): v.decode(errors="backslashreplace")
                for k, v in self.fields.items()
            },
        }


def _letter(letter_id: bytes, raw: dict[bytes, bytes]) -> Letter:
    def text(name: bytes) -> str:
        return raw.get(name, b"").decode(errors="backslashreplace")

    try:
        failed_at: datetime | None = datetime.fromtimestamp(int(raw[DLQ_AT]) / 1000, UTC)
    except (KeyError, ValueError, OverflowError, OSError):
        failed_at = None
    try:
        deliveries = int(raw.get(DLQ_DELIVERIES, b"0"))
    except ValueError:
        deliveries = 0
    return Letter(
        id=letter_id.decode(),
        stream=text(DLQ_STREAM),
        group=text(DLQ_GROUP),
        entry_id=text(DLQ_ID),
        error=text(DLQ_ERROR),
        deliveries=deliveries,
        failed_at=failed_at,
        fields={k: v for k, v in raw.items() if not k.startswith(b"dlq:")},
    )


async def letters(
    client: aredis.Redis, *, count: int = 100, after: str = "-", until: str = "+"
) -> list[Letter]:
    """The oldest ``count`` letters after ID ``after`` (exclusive unless "-"), up to
    ``until`` (inclusive)."""
    start = after if after == "-" else f"({after}"
    reply: Any = await client.xrange(DLQ, min=start, max=until, count=count)
    return [_letter(letter_id, raw) for letter_id, raw in reply]


async def last_id(client: aredis.Redis) -> str | None:
    """The newest letter's ID: where a sweep over "all" letters stops, so letters
    added meanwhile (a replayed entry failing again) are not swept up endlessly."""
    reply: Any = await client.xrevrange(DLQ, count=1)
    return reply[0][0].decode() if reply else None


async def each_page(client: aredis.Redis) -> AsyncIterator[list[Letter]]:
    """Every letter present now, 500 at a time."""
    until = await last_id(client)
    after = "-"
    while until is not None:
        page = await letters(client, count=500, after=after, until=until)
        if not page:
            return
        yield page
        after = page[-1].id


async def letter(client: aredis.Redis, letter_id: str) -> Letter | None:
    reply: Any = await client.xrange(DLQ, min=letter_id, max=letter_id, count=1)
    return _letter(*reply[0]) if reply else None


async def size(client: aredis.Redis) -> int:
    return int(await client.xlen(DLQ))


class NotReplayable(ValueError):
    pass


async def replay(client: aredis.Redis, chosen: list[Letter]) -> list[str]:
    """Write each letter back to its stream and delete it; return the new entry IDs."""
    for one in chosen:
        if one.stream not in REPLAYABLE:
            raise NotReplayable(f"letter {one.id} names an unknown stream {one.stream!r}")
    new_ids = []
    for one in chosen:
        fields: dict[Any, Any] = {**one.fields, ORIGIN: one.fields.get(ORIGIN, one.entry_id)}
        async with client.pipeline(transaction=True) as pipe:
            pipe.xadd(one.stream, fields)
            pipe.xdel(DLQ, one.id)
            new_id, _ = await pipe.execute()
        new_ids.append(new_id.decode())
    return new_ids


async def purge(client: aredis.Redis, ids: list[str] | None) -> int:
    """Delete these letters (None: all of them); return how many went."""
    if ids is not None:
        return int(await client.xdel(DLQ, *ids)) if ids else 0
    purged = 0  # what is there now: a letter added meanwhile is not swept away unseen
    async for page in each_page(client):
        purged += int(await client.xdel(DLQ, *[one.id for one in page]))
    return purged
