"""The ``api_keys`` table: keys are stored as a SHA-256 hash plus a visible prefix."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from shorty.core.accounts import (
    DEFAULT_SCOPES,
    ApiKey,
    Principal,
    check_key_name,
    check_scopes_for_role,
    hash_api_key,
    new_api_key,
    shown_prefix,
)
from shorty.core.errors import InvalidAccount, InvalidExpiry, QuotaExceeded
from shorty.resilience import retry

DEFAULT_MAX_LIVE_KEYS = 50  # SHORTY_MAX_KEYS_PER_USER


_SELECT = """
SELECT k.id, k.user_id, u.email, k.name, k.prefix, k.scopes, k.created_at, k.expires_at,
       k.last_used_at, k.revoked_at, k.rate_limit, k.parent_id
FROM api_keys k JOIN users u ON u.id = k.user_id
"""


def _key(row: asyncpg.Record) -> ApiKey:
    fields = dict(row)
    fields["scopes"] = tuple(fields["scopes"])
    return ApiKey(**fields)


_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


class KeyStore:
    def __init__(self, pool: asyncpg.Pool, *, max_live: int = DEFAULT_MAX_LIVE_KEYS) -> None:
        self._pool = pool
        self._max_live = max_live

    async def create(
        self,
        user_id: int,
        *,
        name: str = "",
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        expires_at: datetime | None = None,
        raw: str | None = None,
        parent_id: int | None = None,
    ) -> tuple[ApiKey, str]:
        """Store a new key and return it with its raw value (shown once, never stored).

        The owner's role must grant every scope (InvalidAccount), and the owner may
        hold at most ``max_live`` live keys (QuotaExceeded). A key minted by another
        key (``parent_id``) never outlives it: it takes the parent's expiry when it
        asks for none, is refused one past it (InvalidExpiry), takes the parent's
        rate limit, and spends from its ancestors' limits on every request. The
        owner's row is locked meanwhile, so two keys minted at once cannot both take
        the last place, and a revocation (which takes the same lock) sees the key."""
        raw = raw or new_api_key()
        name = check_key_name(name)
        rate_limit: str | None = None
        ancestors: list[int] = []
        async with self._pool.acquire() as conn, conn.transaction():
            role = await conn.fetchval("SELECT role FROM users WHERE id = $1 FOR UPDATE", user_id)
            if role is None:
                raise InvalidAccount(f"No user has the id {user_id}.")
            scopes = check_scopes_for_role(scopes, role)
            if parent_id is not None:
                parent = await conn.fetchrow(
                    "SELECT expires_at, rate_limit, ancestor_ids FROM api_keys"
                    f" WHERE id = $1 AND user_id = $2 AND {_LIVE} FOR SHARE",
                    parent_id,
                    user_id,
                )
                if parent is None:
                    raise InvalidAccount("The key minting this key is revoked or expired.")
                expires_at = _within(expires_at, parent["expires_at"])
                rate_limit = parent["rate_limit"]
                ancestors = [*parent["ancestor_ids"], parent_id]
            live = await conn.fetchval(
                f"SELECT count(*) FROM api_keys WHERE user_id = $1 AND {_LIVE}", user_id
            )
            if live >= self._max_live:
                raise QuotaExceeded(
                    "keys",
                    self._max_live,
                    f"A user may hold at most {self._max_live} live API keys;"
                    " revoke one first (SHORTY_MAX_KEYS_PER_USER).",
                )
            key_id = await conn.fetchval(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, expires_at,"
                " parent_id, rate_limit, ancestor_ids)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (key_hash) DO NOTHING RETURNING id",
                user_id,
                name,
                shown_prefix(raw),
                hash_api_key(raw),
                list(scopes),
                expires_at,
                parent_id,
                rate_limit,
                ancestors,
            )
        if key_id is None:
            raise InvalidAccount("This API key value is already in use.")
        key = await self.by_id(key_id)
        assert key is not None
        return key, raw

    async def by_id(self, key_id: int) -> ApiKey | None:
        row = await self._pool.fetchrow(_SELECT + " WHERE k.id = $1", key_id)
        return _key(row) if row else None

    async def authenticate(self, raw: str) -> Principal | None:
        """The principal for a live key of an enabled user, else None. The lookup, the
        first query of every API call, is a read: retried once on a fresh connection if
        its own broke (``resilience/retry.py``)."""
        row = await retry.idempotent(lambda: self._fetch_principal(raw))
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
            row["max_links"],
            tuple(zip(row["ancestor_ids"], row["ancestor_limits"], strict=True)),
        )

    async def _fetch_principal(self, raw: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            "SELECT k.id, k.user_id, k.scopes, u.role, k.rate_limit AS key_limit,"
            " u.rate_limit AS user_limit, u.max_links, k.ancestor_ids,"
            " ARRAY(SELECT a.rate_limit FROM unnest(k.ancestor_ids) WITH ORDINALITY"
            " AS up (id, n) JOIN api_keys a ON a.id = up.id ORDER BY up.n) AS ancestor_limits,"
            " k.last_used_at < now() - interval '1 minute'"
            " OR k.last_used_at IS NULL AS stale FROM api_keys k"
            " JOIN users u ON u.id = k.user_id"
            " WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
            " AND (k.expires_at IS NULL OR k.expires_at > now()) AND NOT u.disabled",
            hash_api_key(raw),
        )

    async def list(self, *, user_id: int | None = None) -> list[ApiKey]:
        rows = await self._pool.fetch(
            _SELECT + " WHERE ($1::bigint IS NULL OR k.user_id = $1) ORDER BY k.id", user_id
        )
        return [_key(row) for row in rows]

    async def revoke(self, prefix_or_id: str) -> ApiKey:
        """Revoke the one live key with this id or visible prefix, and every key it
        minted (and they minted)."""
        candidates = await self._pool.fetch(
            "SELECT id FROM api_keys WHERE revoked_at IS NULL AND (prefix = $1 OR id::text = $1)",
            prefix_or_id,
        )
        if not candidates:
            raise InvalidAccount(f"No live API key has the id or prefix '{prefix_or_id}'.")
        if len(candidates) > 1:
            raise InvalidAccount(f"'{prefix_or_id}' matches several keys; revoke by id instead.")
        key_id = candidates[0]["id"]
        await self._revoke_tree(key_id, None)
        key = await self.by_id(key_id)
        assert key is not None
        return key

    async def count(self) -> int:
        value = await self._pool.fetchval("SELECT count(*) FROM api_keys")
        return int(value)

    async def revoke_owned(self, key_id: int, *, owner_id: int | None) -> ApiKey | None:
        """Revoke key ``key_id`` and the keys it minted, if ``owner_id`` owns it (None:
        any owner)."""
        revoked = await self._revoke_tree(key_id, owner_id)
        return await self.by_id(key_id) if revoked else None

    async def _revoke_tree(self, key_id: int, owner_id: int | None) -> bool:
        """Revoke ``key_id`` and every key below it; False if there is no such key (of
        ``owner_id``). The owner's row is locked first, as ``create`` locks it: a key
        being minted under this one is committed before the keys below are read, so
        it is revoked too (a review raced the two, and the child lived on)."""
        async with self._pool.acquire() as conn, conn.transaction():
            user_id = await conn.fetchval(
                "SELECT user_id FROM api_keys"
                " WHERE id = $1 AND ($2::bigint IS NULL OR user_id = $2)",
                key_id,
                owner_id,
            )
            if user_id is None:
                return False
            await conn.execute("SELECT FROM users WHERE id = $1 FOR UPDATE", user_id)
            await conn.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
                " WHERE user_id = $1 AND (id = $2 OR $2 = ANY (ancestor_ids))",
                user_id,
                key_id,
            )
        return True

    async def set_limit(self, key_id: int, limit: str | None) -> ApiKey | None:
        updated = await self._pool.fetchval(
            "UPDATE api_keys SET rate_limit = $2 WHERE id = $1 RETURNING id", key_id, limit
        )
        return await self.by_id(updated) if updated is not None else None


def _within(asked: datetime | None, parent_expires: datetime | None) -> datetime | None:
    """The expiry of a key minted by a key that expires at ``parent_expires``."""
    if parent_expires is None:
        return asked
    if asked is None:
        return parent_expires
    if asked > parent_expires:
        raise InvalidExpiry(
            "A key cannot outlive the key that mints it: expires_at may be at most"
            f" {parent_expires.isoformat()}."
        )
    return asked
