"""Alembic environment: runs migrations over asyncpg, one at a time cluster-wide.

The DSN comes from ``config.attributes["dsn"]`` (set by ``shorty.store.migrate``);
an advisory lock keeps two migration jobs (two Helm hooks, two laptops) from
racing each other.
"""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import Connection, pool, text
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATION_LOCK = 0x5_1107_7001  # arbitrary, constant: "shorty migrations"


def _migrate(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


async def _run(dsn: str) -> None:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=connect, poolclass=pool.NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (--sql) migrations are not supported; run `shorty migrate`.")
asyncio.run(_run(context.config.attributes["dsn"]))
