"""Start-up provisioning: SHORTY_INITIAL_API_KEY becomes an admin key (as in Shlink), and
SHORTY_OPERATOR_API_KEY the ShortLink operator's key (urls:read and urls:write only)."""

from __future__ import annotations

import logging

import asyncpg

from shorty.core.accounts import (
    OPERATOR_SCOPES,
    SCOPES,
    hash_api_key,
    normalize_email,
    shown_prefix,
)
from shorty.core.errors import BootstrapRefused
from shorty.settings import Settings

log = logging.getLogger(__name__)


BOOTSTRAP_LOCK = 0x5_1107_7002  # serialises replicas that start together
OPERATOR_KEY_NAME = "operator"


async def ensure_initial_api_key(pool: asyncpg.Pool, raw: str, admin_email: str) -> bool:
    """Create an admin key with value ``raw`` if no API key exists yet.

    Returns True if the key was created. Safe when several replicas start at
    once: the work runs under a transaction-scoped advisory lock. Raises
    BootstrapRefused when ``admin_email`` belongs to an account with a password
    (registration reserves the address, but it may have been taken before).
    """
    email = normalize_email(admin_email)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM api_keys)"):
            return False
        existing = await conn.fetchrow(
            "SELECT id, role, password_hash IS NOT NULL AS has_password FROM users"
            " WHERE email = $1",
            email,
        )
        if existing is not None and existing["has_password"]:
            # Someone chose a password for this address (registration is open to
            # anyone): crowning that account would hand admin to whoever did.
            raise BootstrapRefused(
                f"SHORTY_INITIAL_ADMIN_EMAIL ({email}) belongs to an account with a password,"
                " which start-up will not make an admin: set SHORTY_INITIAL_ADMIN_EMAIL to an"
                " unused address, or make a key for a known admin with"
                " `shorty apikey create --email ... --scope admin` and unset"
                " SHORTY_INITIAL_API_KEY."
            )
        if existing is not None and existing["role"] != "admin":
            log.warning(
                "SHORTY_INITIAL_ADMIN_EMAIL names an existing user; making them an admin",
                extra={"user.email": email},
            )
        user_id = await conn.fetchval(
            "INSERT INTO users (email, role) VALUES ($1, 'admin')"
            " ON CONFLICT (email) DO UPDATE SET role = 'admin' RETURNING id",
            email,
        )
        await conn.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes)"
            " VALUES ($1, 'initial', $2, $3, $4)",
            user_id,
            shown_prefix(raw),
            hash_api_key(raw),
            sorted(SCOPES),
        )
    log.info("created the initial admin API key", extra={"user.email": email})
    return True


async def ensure_operator_api_key(pool: asyncpg.Pool, raw: str, email: str) -> bool:
    """Make sure an API key with value ``raw`` exists: if none does, create it for the
    plain user ``email`` with exactly urls:read and urls:write, and revoke that user's
    earlier operator keys (the value was rotated).

    Returns True if the key was created. A key with this value that already exists
    (whoever owns it, `shorty apikey create` may have made it) is left as it is.
    Safe when several replicas start at once (the same advisory lock as the initial
    key). Raises BootstrapRefused when ``email`` belongs to an account with a
    password or an admin: the operator's key must not act as a person.
    """
    email = normalize_email(email)
    key_hash = hash_api_key(raw)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK)
        if await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE key_hash = $1)", key_hash
        ):
            return False
        existing = await conn.fetchrow(
            "SELECT id, role, password_hash IS NOT NULL AS has_password FROM users"
            " WHERE email = $1",
            email,
        )
        if existing is not None and (existing["has_password"] or existing["role"] != "user"):
            raise BootstrapRefused(
                f"SHORTY_OPERATOR_EMAIL ({email}) belongs to an account with a password or"
                " an admin, which start-up will not give the operator's key: set"
                " SHORTY_OPERATOR_EMAIL to an unused address."
            )
        user_id = (
            existing["id"]
            if existing is not None
            else await conn.fetchval(
                "INSERT INTO users (email, role) VALUES ($1, 'user') RETURNING id", email
            )
        )
        revoked = await conn.execute(
            "UPDATE api_keys SET revoked_at = now()"
            " WHERE user_id = $1 AND name = $2 AND revoked_at IS NULL",
            user_id,
            OPERATOR_KEY_NAME,
        )
        await conn.execute(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes)"
            " VALUES ($1, $2, $3, $4, $5)",
            user_id,
            OPERATOR_KEY_NAME,
            shown_prefix(raw),
            key_hash,
            list(OPERATOR_SCOPES),
        )
    log.info(
        "created the operator's API key (urls:read, urls:write)",
        extra={"user.email": email, "shorty.keys.revoked": int(revoked.split()[-1])},
    )
    return True


async def provision_keys(pool: asyncpg.Pool, settings: Settings) -> None:
    """The keys the settings ask for at start: the first admin's, then the operator's."""
    if settings.initial_api_key is not None:
        await ensure_initial_api_key(
            pool, settings.initial_api_key.get_secret_value(), settings.initial_admin_email
        )
    if settings.operator_api_key is not None:
        await ensure_operator_api_key(
            pool, settings.operator_api_key.get_secret_value(), settings.operator_email
        )
