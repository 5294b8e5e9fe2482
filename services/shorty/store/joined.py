"""One transaction for a request's writes, when its caller holds one open.

An idempotent create claims its key, writes its link and keeps its answer in one
transaction (``api/idempotency.py``): a process killed anywhere in between leaves
none of the three, so a retry with the same key finds it free and creates the link
once. Before, each was a transaction of its own and a kill between them left the
key claimed without an answer: every retry got 409 for the key's 24 hours.

The stores' write paths take their transaction from ``transaction(pool)``: a
savepoint of the joined one while a caller has ``joining(conn)``, else one of their
own on a pooled connection.

What must wait until the writes are visible to others (the cache invalidation of a
new code: a lookup before the commit would remember the code as unknown) goes
through ``after_commit``: run at once without a joined transaction, else by the
joining caller once it has committed (``Joined.committed``), never if it rolls back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg

Action = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Joined:
    """The open transaction writes join, and what is left for after its commit."""

    conn: asyncpg.Connection
    _after_commit: list[Action] = field(default_factory=list)

    async def committed(self) -> None:
        """The transaction has committed: run what was left for then, in order."""
        for action in self._after_commit:
            await action()


_joined: ContextVar[Joined | None] = ContextVar("shorty_joined", default=None)


@contextmanager
def joining(conn: asyncpg.Connection) -> Iterator[Joined]:
    """Within the block, the stores write in ``conn``'s open transaction; the caller
    commits it, then awaits ``committed()`` on what this yields."""
    joined = Joined(conn)
    token = _joined.set(joined)
    try:
        yield joined
    finally:
        _joined.reset(token)


async def after_commit(action: Action) -> None:
    """``action()`` once the writes made so far are committed: now, or after the
    joined transaction's commit."""
    joined = _joined.get()
    if joined is None:
        await action()
    else:
        joined._after_commit.append(action)


@asynccontextmanager
async def transaction(pool: Any) -> AsyncIterator[asyncpg.Connection]:
    """A transaction to write in: a savepoint of the joined one (an error undoes this
    block's writes only), or one on a connection of ``pool``."""
    joined = _joined.get()
    if joined is not None:
        async with joined.conn.transaction():
            yield joined.conn
        return
    async with pool.acquire() as conn, conn.transaction():
        yield conn
