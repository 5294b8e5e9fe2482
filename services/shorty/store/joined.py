"""One transaction for a request's writes, when its caller holds one open.

An idempotent create claims its key, writes its link and keeps its answer in one
transaction (``api/idempotency.py``): a process killed anywhere in between leaves
none of the three, so a retry with the same key finds it free and creates the link
once. Before, each was a transaction of its own and a kill between them left the
key claimed without an answer: every retry got 409 for the key's 24 hours.

The stores' write paths take their transaction from ``transaction(pool)``: a
savepoint of the joined one while a caller has ``joining(conn)``, else one of their
own on a pooled connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg

_joined: ContextVar[asyncpg.Connection | None] = ContextVar("shorty_joined", default=None)


@contextmanager
def joining(conn: asyncpg.Connection) -> Iterator[None]:
    """Within the block, the stores write in ``conn``'s open transaction."""
    token = _joined.set(conn)
    try:
        yield
    finally:
        _joined.reset(token)


@asynccontextmanager
async def transaction(pool: Any) -> AsyncIterator[asyncpg.Connection]:
    """A transaction to write in: a savepoint of the joined one (an error undoes this
    block's writes only), or one on a connection of ``pool``."""
    conn = _joined.get()
    if conn is not None:
        async with conn.transaction():
            yield conn
        return
    async with pool.acquire() as conn, conn.transaction():
        yield conn
