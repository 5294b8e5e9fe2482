"""PostgreSQL and Redis for a management command: the configured server, or else the
embedded one; ``with_pool`` and ``with_redis`` open a client, run one coroutine on it
and close it, and turn what a person can act on into a one-line message."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import asyncpg
import click

from shorty import embedded
from shorty.cli.config import F
from shorty.core.errors import DomainError
from shorty.settings import Settings
from shorty.store.db import small_pool
from shorty.store.errors import UNAVAILABLE

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")


@contextmanager
def server_url(
    config: Settings, data_dir: Path | None, kind: Literal["database", "redis"]
) -> Iterator[str]:
    """SHORTY_DATABASE_URL / SHORTY_REDIS_URL, or else the embedded server under
    ``data_dir`` (started if needed, and stopped after unless another process such as
    `shorty dev` still uses it)."""
    given = config.database_url if kind == "database" else config.redis_url
    if given is not None:
        yield given.get_secret_value()
        return
    if data_dir is None:
        raise click.ClickException(f"SHORTY_{kind.upper()}_URL is not set.")
    try:
        servers = embedded.start(data_dir, postgres=kind == "database", redis=kind == "redis")
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(f"SHORTY_{kind.upper()}_URL is not set and {exc}") from None
    try:
        url = servers.database_url or servers.redis_url
        assert url is not None
        yield url
    finally:
        servers.stop()


def domain_errors(func: F) -> F:
    """Turn the errors a person can act on (bad email, unknown key, unmigrated or
    unreachable database) into a one-line message instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        except asyncpg.UndefinedTableError:
            raise click.ClickException(
                "The database has no Shorty tables yet; run `shorty migrate` first."
            ) from None
        except UNAVAILABLE as exc:
            raise click.ClickException(
                f"Cannot reach PostgreSQL ({type(exc).__name__}); check SHORTY_DATABASE_URL."
            ) from None

    return wrapper  # type: ignore[return-value]


def with_pool(
    config: Settings, data_dir: Path | None, action: Callable[[asyncpg.Pool], Awaitable[T]]
) -> T:
    """Run ``action(pool)`` on a small pool of the database, closed afterwards.

    Wrap the command in ``domain_errors`` so that what it raises reads as one line."""

    async def run(url: str) -> T:
        async with small_pool(url) as pool:
            return await action(pool)

    with server_url(config, data_dir, "database") as url:
        return asyncio.run(run(url))


def with_redis(
    config: Settings, data_dir: Path | None, action: Callable[[Redis], Awaitable[T]]
) -> T:
    """Run ``action(client)`` on an asyncio Redis client, closed afterwards; a
    connection failure becomes a one-line message."""
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    async def run(url: str) -> T:
        client = Redis.from_url(url, socket_timeout=10)
        try:
            return await action(client)
        finally:
            await client.aclose()

    with server_url(config, data_dir, "redis") as url:
        try:
            return asyncio.run(run(url))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise click.ClickException(
                f"Cannot reach Redis ({type(exc).__name__}); check SHORTY_REDIS_URL."
            ) from None
