"""Idempotency keys: a retried POST with the same key gets the first answer back.

The first request with a key claims it (one row, no response yet), does its
work, and stores its answer. A repeat with the same body gets that answer; with
another body, a clear error; while the first is still running, a 409. Keys
last ``TTL``; a failure that produced no answer (a 5xx) releases the key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from shorty.core.errors import IdempotencyInProgress, IdempotencyMismatch

TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: Any


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def claim(self, user_id: int, route: str, key: str, request_hash: str) -> Replay | None:
        """None: the key is ours, go ahead. A Replay: answer with it. Else a DomainError."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3"
                " AND created_at < now() - $4::interval",
                user_id,
                route,
                key,
                TTL,
            )
            claimed = await conn.fetchval(
                "INSERT INTO idempotency_keys (user_id, route, key, request_hash)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                user_id,
                route,
                key,
                request_hash,
            )
            if claimed:
                return None
            row = await conn.fetchrow(
                "SELECT request_hash, status, response FROM idempotency_keys"
                " WHERE user_id = $1 AND route = $2 AND key = $3",
                user_id,
                route,
                key,
            )
        if row is None:  # released between our insert and select: claim again
            return await self.claim(user_id, route, key, request_hash)
        if row["request_hash"] != request_hash:
            raise IdempotencyMismatch(
                "This Idempotency-Key was used with another request body; use a new key."
            )
        if row["status"] is None:
            raise IdempotencyInProgress(
                "A request with this Idempotency-Key is still being processed; retry shortly."
            )
        return Replay(row["status"], json.loads(row["response"]))

    async def store(self, user_id: int, route: str, key: str, status: int, body: Any) -> None:
        await self._pool.execute(
            "UPDATE idempotency_keys SET status = $4, response = $5::jsonb"
            " WHERE user_id = $1 AND route = $2 AND key = $3",
            user_id,
            route,
            key,
            status,
            json.dumps(body),
        )

    async def release(self, user_id: int, route: str, key: str) -> None:
        await self._pool.execute(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND route = $2 AND key = $3"
            " AND status IS NULL",
            user_id,
            route,
            key,
        )

    async def prune(self) -> int:
        """Drop keys older than TTL (the worker calls this now and then)."""
        result = await self._pool.execute(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval", TTL
        )
        return int(result.split()[-1])
