"""The ``users`` table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from argon2 import PasswordHasher

from shorty.core.accounts import ROLES, check_password, normalize_email
from shorty.core.errors import InvalidAccount

_hasher = PasswordHasher()


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime


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
            " RETURNING id, email, role, disabled, created_at",
            email,
            password_hash,
            role,
        )
        if row is None:
            raise InvalidAccount(f"A user with the email '{email}' already exists.")
        return User(**dict(row))

    async def by_email(self, email: str) -> User | None:
        row = await self._pool.fetchrow(
            "SELECT id, email, role, disabled, created_at FROM users WHERE email = $1",
            normalize_email(email),
        )
        return User(**dict(row)) if row else None

    async def verify_password(self, email: str, password: str) -> User | None:
        """The user if ``password`` is theirs, else None (never says which part was wrong)."""
        row = await self._pool.fetchrow(
            "SELECT id, email, role, disabled, created_at, password_hash FROM users"
            " WHERE email = $1",
            normalize_email(email),
        )
        if row is None or row["password_hash"] is None:
            return None
        try:
            _hasher.verify(row["password_hash"], password)
        except Exception:
            return None
        fields = dict(row)
        fields.pop("password_hash")
        return User(**fields)
