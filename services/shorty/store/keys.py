"""The ``api_keys`` table: keys are stored as a SHA-256 hash plus a visible prefix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shorty.core.accounts import (
    DEFAULT_SCOPES,
    check_key_name,
    check_scopes,
    hash_api_key,
    new_api_key,
    shown_prefix,
)
from shorty.core.errors import InvalidAccount


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    user_id: int
    email: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit: str | None = None


SESSION_KEY_ID = 0  # the key_id of a principal that logged in (an access token, no key)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user, through one of their keys."""

    user_id: int
    role: str
    key_id: int
    scopes: frozenset[str]
    key_limit: str | None = None  # overrides SHORTY_LIMIT_PER_KEY for this key
    user_limit: str | None = None  # overrides SHORTY_LIMIT_PER_USER for this user

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin


_SELECT = """
SELECT k.id, k.user_id, u.email, k.name, k.prefix, k.scopes, k.created_at, k.expires_at,
       k.last_used_at, k.revoked_at, k.rate_limit
FROM api_keys k JOIN users u ON u.id = k.user_id
"""


def _key(row: asyncpg.Record) -> ApiKey:
    fields = dict(row)
    fields["scopes"] = tuple(fields["scopes"])
    return ApiKey(**fields)


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(
        self,
        user_id: int,
        *,
        name: str = "",
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        expires_at: datetime | None = None,
        raw: str | None = None,
    ) -> tuple[ApiKey, str]:
        """Store a new key and return it with its raw value (shown once, never stored)."""
        raw = raw or new_api_key()
        row = await self._pool.fetchrow(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_hash) DO NOTHING RETURNING id",
            user_id,
            check_key_name(name),
            shown_prefix(raw),
            hash_api_key(raw),
            list(check_scopes(scopes)),
            expires_at,
        )
        if row is None:
            raise InvalidAccount("This API key value is already in use.")
        key = await self.by_id(row["id"])
        assert key is not None
        return key, raw

    async def by_id(self, key_id: int) -> ApiKey | None:
        row = await self._pool.fetchrow(_SELECT + " WHERE k.id = $1", key_id)
        return _key(row) if row else None

    async def authenticate(self, raw: str) -> Principal | None:
        """The principal for a live key of an enabled user, else None."""
        row = await self._pool.fetchrow(
            "SELECT k.id, k.user_id, k.scopes, u.role, k.rate_limit AS key_limit,"
            " u.rate_limit AS user_limit, k.last_used_at < now() - interval '1 minute'"
            " OR k.last_used_at IS NULL AS stale FROM api_keys k"
            " JOIN users u ON u.id = k.user_id"
            " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
            " AND (k.expires_at IS NULL OR k.expires_at > now()) AND NOT u.disabled",
            hash_api_key(raw),
        )
        if row is None:
            return None
        if row["stale"]:  # last_used_at is kept to the minute: one write per key per minute
            await self._pool.execute(
                "UPDATE api_keys SET last_used_at = now() WHERE id = $1", row["id"]
            )
        return Principal(
            row["user_id"],
            row["role"],
            row["id"],
            frozenset(row["scopes"]),
            row["key_limit"],
            row["user_limit"],
        )

    async def list(self, *, user_id: int | None = None) -> list[ApiKey]:
        rows = await self._pool.fetch(
            _SELECT + " WHERE ($1::bigint IS NULL OR k.user_id = $1) ORDER BY k.id", user_id
        )
        return [_key(row) for row in rows]

    async def revoke(self, prefix_or_id: str) -> ApiKey:
        """Revoke the one live key with this id or visible prefix."""
        candidates = await self._pool.fetch(
            "SELECT id FROM api_keys WHERE revoked_at IS NULL AND (prefix = $1 OR id::text = $1)",
            prefix_or_id,
        )
        if not candidates:
            raise InvalidAccount(f"No live API key has the id or prefix '{prefix_or_id}'.")
        if len(candidates) > 1:
            raise InvalidAccount(f"'{prefix_or_id}' matches several keys; revoke by id instead.")
        key_id = candidates[0]["id"]
        await self._pool.execute("UPDATE api_keys SET revoked_at = now() WHERE id = $1", key_id)
        key = await self.by_id(key_id)
        assert key is not None
        return key

    async def count(self) -> int:
        value = await self._pool.fetchval("SELECT count(*) FROM api_keys")
        return int(value)

    async def revoke_owned(self, key_id: int, *, owner_id: int | None) -> ApiKey | None:
        """Revoke key ``key_id`` if ``owner_id`` owns it (None: any owner)."""
        revoked = await self._pool.fetchval(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
            " WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2) RETURNING id",
            key_id,
            owner_id,
        )
        return await self.by_id(revoked) if revoked is not None else None

    async def set_limit(self, key_id: int, limit: str | None) -> ApiKey | None:
        updated = await self._pool.fetchval(
            "UPDATE api_keys SET rate_limit = $2 WHERE id = $1 RETURNING id", key_id, limit
        )
        return await self.by_id(updated) if updated is not None else None
