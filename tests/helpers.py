"""Small synchronous helpers over the real database, for arranging and checking tests,
and a bounded wait for what happens in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg

from shorty.core.accounts import DEFAULT_SCOPES
from shorty.store.keys import KeyStore
from shorty.store.users import UserStore
from shorty.worker.rollup import Aggregator


def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def scalar(database_url: str, sql: str, *args: Any) -> Any:
    rows = query(database_url, sql, *args)
    return rows[0][0] if rows else None


def roll_up(database_url: str) -> int:
    """Roll up every click stored so far, as the worker's aggregator does; return how
    many."""

    async def go() -> int:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            return await Aggregator(pool).drain()
        finally:
            await pool.close()

    return asyncio.run(go())


def user_with_key(
    database_url: str,
    email: str,
    *,
    role: str = "user",
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
) -> tuple[int, str]:
    """Create a user and an API key for them; return (user id, raw key)."""

    async def go() -> tuple[int, str]:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            user = await UserStore(pool).create(email, None, role=role)
            _, raw = await KeyStore(pool).create(user.id, scopes=scopes)
            return user.id, raw
        finally:
            await pool.close()

    return asyncio.run(go())


def another_key(database_url: str, user_id: int) -> str:
    """A second API key for an existing user."""

    async def go() -> str:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            _, raw = await KeyStore(pool).create(user_id)
            return raw
        finally:
            await pool.close()

    return asyncio.run(go())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_for(
    check: Callable[[], Any], timeout: float = 30.0, what: str = "the condition", every: float = 0.1
) -> Any:
    """Poll ``check`` every ``every`` seconds until it returns something truthy, and
    return that; AssertionError (naming ``what`` and the last answer) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
        time.sleep(every)
