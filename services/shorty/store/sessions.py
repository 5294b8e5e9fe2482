"""Refresh tokens: opaque, stored as SHA-256, one use each.

Each login starts a family. Refreshing spends the presented token and issues
the next one in the same family. Presenting a token that was already spent
means it was copied: the whole family is revoked, so both the thief and the
owner must log in again.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from shorty.core.errors import InvalidRefreshToken, RefreshTokenReused


@dataclass(frozen=True, slots=True)
class Session:
    user_id: int
    refresh_token: str
    family: uuid.UUID  # the login it belongs to; access tokens name it (``sid``)


@dataclass(frozen=True, slots=True)
class Signed:
    """A live session and whose it is (shown on the pages; the API decides what the
    person may do)."""

    session: Session
    email: str
    role: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    def __init__(self, pool: asyncpg.Pool, ttl: timedelta) -> None:
        self._pool = pool
        self._ttl = ttl

    async def start(self, user_id: int) -> Session:
        return await self._issue(self._pool, user_id, uuid.uuid4())

    async def rotate(self, token: str) -> Session:
        """Spend ``token`` and return the next one of its family."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT id, user_id, family, used_at, revoked_at, expires_at < now() AS expired"
                " FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                _hash(token),
            )
            if row is None or row["revoked_at"] is not None or row["expired"]:
                raise InvalidRefreshToken("This refresh token is unknown, expired or revoked.")
            if row["used_at"] is None:
                await conn.execute(
                    "UPDATE refresh_tokens SET used_at = now() WHERE id = $1", row["id"]
                )
                return await self._issue(conn, row["user_id"], row["family"])
            # Spent before: the revocation must commit, so it is raised after the block.
            await conn.execute(
                "UPDATE refresh_tokens SET revoked_at = now()"
                " WHERE family = $1 AND revoked_at IS NULL",
                row["family"],
            )
        raise RefreshTokenReused(
            "This refresh token was already used; every session it started is ended."
        )

    async def end(self, token: str) -> bool:
        """Revoke the family of ``token`` (logout). False if the token is unknown."""
        family = await self._pool.fetchval(
            "SELECT family FROM refresh_tokens WHERE token_hash = $1", _hash(token)
        )
        if family is None:
            return False
        await self._pool.execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL",
            family,
        )
        return True

    async def end_others(self, user_id: int, keep: uuid.UUID | None) -> int:
        """End every session of ``user_id`` but the one of family ``keep`` (after a
        password change); the number of sessions ended."""
        ended = await self._pool.fetchval(
            "WITH ended AS (UPDATE refresh_tokens SET revoked_at = now()"
            " WHERE user_id = $1 AND family IS DISTINCT FROM $2 AND revoked_at IS NULL"
            " RETURNING family) SELECT count(DISTINCT family) FROM ended",
            user_id,
            keep,
        )
        return int(ended)

    async def peek(self, token: str) -> Signed | None:
        """Who holds ``token`` if it is live (unspent, unrevoked, unexpired) and its user
        enabled, without spending it: a browser's session cookie (``shorty.ui``).

        The pages never spend it; a spent one was spent by someone who copied the
        cookie (at /auth/refresh). As there, that ends its whole session: the
        copier's new tokens too."""
        row = await self._pool.fetchrow(
            "SELECT r.user_id, r.family, r.used_at IS NOT NULL AS spent, u.email, u.role"
            " FROM refresh_tokens r JOIN users u ON u.id = r.user_id WHERE r.token_hash = $1"
            " AND r.revoked_at IS NULL AND r.expires_at > now() AND NOT u.disabled",
            _hash(token),
        )
        if row is None:
            return None
        if row["spent"]:
            await self._pool.execute(
                "UPDATE refresh_tokens SET revoked_at = now()"
                " WHERE family = $1 AND revoked_at IS NULL",
                row["family"],
            )
            return None
        return Signed(Session(row["user_id"], token, row["family"]), row["email"], row["role"])

    async def _issue(
        self, conn: asyncpg.Pool | asyncpg.Connection, user_id: int, family: uuid.UUID
    ) -> Session:
        token = "shr_" + secrets.token_urlsafe(32)
        await conn.execute(
            "INSERT INTO refresh_tokens (user_id, family, token_hash, expires_at)"
            " VALUES ($1, $2, $3, now() + $4::interval)",
            user_id,
            family,
            _hash(token),
            self._ttl,
        )
        return Session(user_id, token, family)
