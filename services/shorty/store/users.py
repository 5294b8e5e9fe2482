"""The ``users`` table."""

from __future__ import annotations

import contextlib
import functools
import uuid

import argon2
import asyncpg
from argon2 import PasswordHasher

from shorty.core.accounts import (
    ROLE_SCOPES,
    ROLES,
    SESSION_KEY_ID,
    Principal,
    User,
    check_password,
    normalize_email,
)
from shorty.core.errors import InvalidAccount
from shorty.store.links import contains

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not a password of anyone's")


_USER = "id, email, role, disabled, created_at, rate_limit, max_links"


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, email: str, password: str | None, *, role: str = "user") -> User:
        """Create a user; without a password the account cannot log in (keys only)."""
        if role not in ROLES:
            raise InvalidAccount(f"Unknown role '{role}'; use one of {', '.join(sorted(ROLES))}.")
        email = normalize_email(email)
        password_hash = _hasher.hash(check_password(password)) if password is not None else None
        row = await self._pool.fetchrow(
            "INSERT INTO users (email, password_hash, role) VALUES ($1, $2, $3)"
            " ON CONFLICT (email) DO NOTHING"
            f" RETURNING {_USER}",
            email,
            password_hash,
            role,
        )
        if row is None:
            raise InvalidAccount(f"A user with the email '{email}' already exists.")
        return User(**dict(row))

    async def register(
        self, email: str, password: str, *, reserved: frozenset[str]
    ) -> tuple[str, bool]:
        """Open an account for ``email`` unless it is taken or ``reserved``; return the
        normalized address and whether an account was opened (for the audit log, not
        the caller's answer). The password is hashed (the slow part) and the insert
        tried in every case, so the time spent does not tell which it was."""
        email = normalize_email(email)
        password_hash = _hasher.hash(check_password(password))
        created = await self._pool.fetchval(
            "INSERT INTO users (email, password_hash) SELECT $1, $2 WHERE NOT $3"
            " ON CONFLICT (email) DO NOTHING RETURNING true",
            email,
            password_hash,
            email in reserved,
        )
        return email, bool(created)

    async def by_email(self, email: str) -> User | None:
        row = await self._pool.fetchrow(
            f"SELECT {_USER} FROM users WHERE email = $1",
            normalize_email(email),
        )
        return User(**dict(row)) if row else None

    async def verify_password(self, email: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (never says which part was wrong:
        not even that ``email`` is no address at all)."""
        try:
            email = normalize_email(email)
        except InvalidAccount:
            email = ""  # matches nobody; the dummy check below still runs
        row = await self._pool.fetchrow(
            f"SELECT {_USER}, password_hash FROM users WHERE email = $1", email
        )
        if row is None or row["password_hash"] is None:
            # Spend the same time as a real check: the answer must not tell whether
            # the account exists.
            with contextlib.suppress(argon2.exceptions.VerificationError):
                _hasher.verify(_dummy_hash(), password)
            return None
        try:
            _hasher.verify(row["password_hash"], password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return None
        fields = dict(row)
        fields.pop("password_hash")
        return User(**fields)

    async def change_password(self, user_id: int, current: str, new: str) -> bool:
        """Set ``new`` as the password of ``user_id`` if ``current`` is theirs (False
        if not: nothing changes). A new password is checked as at registration, and
        hashed before the row is read, so a wrong ``current`` costs the same work."""
        new_hash = _hasher.hash(check_password(new))
        async with self._pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                "SELECT password_hash FROM users WHERE id = $1 FOR UPDATE", user_id
            )
            try:
                _hasher.verify(stored or _dummy_hash(), current)
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
                return False
            if stored is None:  # an account without a password (keys only)
                return False
            await conn.execute(
                "UPDATE users SET password_hash = $2 WHERE id = $1", user_id, new_hash
            )
        return True

    async def page(
        self, *, after_id: int = 0, limit: int = 100, search: str | None = None
    ) -> list[User]:
        """Users by id after ``after_id``; with ``search``, those whose address holds it
        (case-insensitive, ``%`` and ``_`` literal)."""
        rows = await self._pool.fetch(
            f"SELECT {_USER} FROM users WHERE id > $1"
            " AND ($3::text IS NULL OR email ILIKE $3) ORDER BY id LIMIT $2",
            after_id,
            limit,
            contains(search) if search else None,
        )
        return [User(**dict(row)) for row in rows]

    async def update(self, user_id: int, changes: dict[str, object]) -> User | None:
        """Change ``disabled``, ``role``, ``rate_limit`` or ``max_links`` of a user. A role
        that grants less takes the scopes it lost from the user's keys too, in the same
        transaction (the request path cuts them anyway; this keeps the rows true)."""
        allowed = {"disabled", "role", "rate_limit", "max_links"}
        if set(changes) - allowed:
            raise ValueError(f"not updatable: {sorted(set(changes) - allowed)}")
        if changes.get("role") not in (None, *ROLES):
            raise InvalidAccount(f"Unknown role; use one of {', '.join(sorted(ROLES))}.")
        names = sorted(changes)
        assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE users SET {assignments} WHERE id = $1 RETURNING {_USER}",
                user_id,
                *(changes[name] for name in names),
            )
            if row is not None and "role" in changes:
                await conn.execute(
                    "UPDATE api_keys SET scopes = ARRAY(SELECT unnest(scopes)"
                    " INTERSECT SELECT unnest($2::text[]) ORDER BY 1) WHERE user_id = $1",
                    user_id,
                    sorted(ROLE_SCOPES[row["role"]]),
                )
        return User(**dict(row)) if row else None

    async def principal(self, user_id: int, session: uuid.UUID | None = None) -> Principal | None:
        """Who a logged-in (access token) request acts as: every scope of the role.
        None for a disabled user, and for a ``session`` (refresh-token family) that is
        not this user's or was ended — by logout, or by the reuse of a spent refresh
        token — so an access token stops working with its session, not at its
        ``exp`` (fail closed: a session nobody knows is no session)."""
        row = await self._pool.fetchrow(
            "SELECT role, rate_limit, max_links FROM users WHERE id = $1 AND NOT disabled"
            " AND ($2::uuid IS NULL OR (EXISTS (SELECT 1 FROM refresh_tokens"
            " WHERE family = $2 AND user_id = $1) AND NOT EXISTS (SELECT 1 FROM refresh_tokens"
            " WHERE family = $2 AND revoked_at IS NOT NULL)))",
            user_id,
            session,
        )
        if row is None:
            return None
        role = row["role"]
        return Principal(
            user_id,
            role,
            SESSION_KEY_ID,
            ROLE_SCOPES[role],
            user_limit=row["rate_limit"],
            max_links=row["max_links"],
            session=session,
        )
