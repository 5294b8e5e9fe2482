"""Run Alembic migrations against a DSN, without an alembic.ini."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["dsn"] = dsn
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def newer_than_code(dsn: str) -> list[str]:
    """The database's revisions that this code does not know: a newer release
    migrated it (and this one was rolled back). Empty when it is at or behind head."""
    known = {
        script.revision
        for script in ScriptDirectory.from_config(alembic_config(dsn)).walk_revisions()
    }
    return [revision for revision in asyncio.run(_applied(dsn)) if revision not in known]


async def _applied(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        if await conn.fetchval("SELECT to_regclass('alembic_version') IS NULL"):
            return []
        return [row[0] for row in await conn.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await conn.close()
