"""Helpers every test folder uses: small synchronous helpers over the real database
for arranging and checking tests, a free port for a server a test starts, and a
bounded wait for what happens in the background."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from shorty.core.accounts import DEFAULT_SCOPES
from shorty.dev import any_free_port
from shorty.store.keys import KeyStore
from shorty.store.users import UserStore
from shorty.worker.rollup import Aggregator


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now, for a server a test starts."""
    return any_free_port("127.0.0.1")


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


def on_pool(url: str, action: Callable[[asyncpg.Pool], Awaitable[Any]]) -> Any:
    """Run ``action(pool)`` on a small pool of the database at ``url``; its result."""

    async def go() -> Any:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        try:
            return await action(pool)
        finally:
            await pool.close()

    return asyncio.run(go())


async def waiting_on_a_lock(pool: asyncpg.Pool) -> None:
    """Until some session of this database waits on a row lock (at most 10 s)."""
    for _ in range(500):
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("nobody waited on the lock")


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


def user_with_password(database_url: str, email: str, password: str, *, role: str = "user") -> int:
    """Create a user who can log in (the web app's tests); return the id."""

    async def go() -> int:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            return (await UserStore(pool).create(email, password, role=role)).id
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
