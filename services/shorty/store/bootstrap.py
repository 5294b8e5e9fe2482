"""First-start provisioning: SHORTY_INITIAL_API_KEY becomes an admin key (as in Shlink)."""

from __future__ import annotations

import logging

import asyncpg

from shorty.core.accounts import SCOPES, hash_api_key, normalize_email, shown_prefix
from shorty.core.errors import BootstrapRefused

log = logging.getLogger(__name__)


BOOTSTRAP_LOCK = 0x5_1107_7002  # serialises replicas that start together


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
