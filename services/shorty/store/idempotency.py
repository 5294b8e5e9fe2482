"""Idempotency keys: a retried POST with the same key gets the first answer back.

The first request with a key claims it (one row, no response yet) in a transaction
that stays open while the request runs: the request's writes join it
(``store/joined.py``) and its answer is kept in it, so the key, the writes and the
answer commit together or not at all — a process killed midway leaves the key free
and nothing made. A repeat with the same body gets the kept answer; with another
body, a clear error; while the first is still running (its claim not committed), a
409 at once. A request that fails keeps nothing: its transaction is rolled back.
Keys last ``TTL``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from shorty.core.errors import IdempotencyInProgress, IdempotencyMismatch

TTL = timedelta(hours=24)
# How long a claim waits for another request's claim of the same key to commit or
# roll back before it answers 409: a repeat sent while the first runs.
CLAIM_WAIT = "100ms"
_IN_PROGRESS = "A request with this Idempotency-Key is still being processed; retry shortly."


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class Claim:
    """A key claimed in ``conn``'s open transaction (``replay`` None), or the answer
    a previous request with the key kept (``replay``)."""

    conn: asyncpg.Connection
    replay: Replay | None
    user_id: int
    route: str
    key: str

    async def keep(self, status: int, body: Any) -> None:
        """Keep the answer, committed with the request's writes."""
        await self.conn.execute(
            "UPDATE idempotency_keys SET status = $4, response = $5::jsonb"
            " WHERE user_id = $1 AND route = $2 AND key = $3",
            self.user_id,
            self.route,
            self.key,
            status,
            json.dumps(body),
        )


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def claiming(
        self, user_id: int, route: str, key: str, request_hash: str
    ) -> AsyncIterator[Claim]:
        """The key claimed for the block, in a transaction committed when the block
        ends and rolled back if it raises; or a Replay; or a DomainError."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3"
                " AND created_at < now() - $4::interval",
                user_id,
                route,
                key,
                TTL,
            )
            # Another request holding the key uncommitted makes this insert wait: for
            # CLAIM_WAIT only, then 409 (a repeat while the first runs).
            await conn.execute(f"SET LOCAL lock_timeout = '{CLAIM_WAIT}'")
            try:
                claimed = await conn.fetchval(
                    "INSERT INTO idempotency_keys (user_id, route, key, request_hash)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                    user_id,
                    route,
                    key,
                    request_hash,
                )
            except asyncpg.LockNotAvailableError:
                raise IdempotencyInProgress(_IN_PROGRESS) from None
            await conn.execute("SET LOCAL lock_timeout TO DEFAULT")
            replay = None if claimed else await _kept(conn, user_id, route, key, request_hash)
            yield Claim(conn, replay, user_id, route, key)

    async def prune(self) -> int:
        """Drop keys older than TTL (the worker calls this now and then)."""
        result = await self._pool.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval", TTL
        )
        return int(result.split()[-1])


async def _kept(
    conn: asyncpg.Connection, user_id: int, route: str, key: str, request_hash: str
) -> Replay:
    """The answer kept for a key claimed (and committed) before."""
    row = await conn.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys"
        " WHERE user_id = $1 AND route = $2 AND key = $3",
        user_id,
        route,
        key,
    )
    if row is None:  # pruned meanwhile
        raise IdempotencyInProgress(_IN_PROGRESS)
    if row["request_hash"] != request_hash:
        raise IdempotencyMismatch(
            "This Idempotency-Key was used with another request body; use a new key."
        )
    if row["status"] is None:
        # Claimed without an answer by a version that committed its claim before the
        # work: in progress, as that version said.
        raise IdempotencyInProgress(_IN_PROGRESS)
    return Replay(row["status"], json.loads(row["response"]))
