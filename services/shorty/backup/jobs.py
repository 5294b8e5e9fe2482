"""A backup (``pg_dump -Fc`` to a folder, checked, renamed, older ones pruned) and a
restore (``pg_restore`` in one transaction, into an empty database unless asked to
replace what is there)."""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg

from shorty.backup.bucket import Remote, Store
from shorty.backup.files import (
    backup_name,
    backups_in,
    partial_path,
    prune,
    remove_stale_partials,
)
from shorty.backup.pgtools import BackupError, connection, find_tool, run_into_psql, run_tool
from shorty.embedded import with_database

# Relations that make a database "not empty": tables, views, sequences and the like
# outside PostgreSQL's own schemas.
OWN_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""


class NotEmpty(BackupError):
    """The restore's target database holds relations and ``clean`` was not asked for."""


@dataclass(frozen=True)
class Created:
    path: Path
    size: int
    pruned: list[Path] = field(default_factory=list)
    uploaded: Remote | None = None
    pruned_remote: list[str] = field(default_factory=list)


def create_backup(
    url: str,
    folder: Path,
    *,
    keep: int | None,
    timeout: float,
    pg_bin: Path | None = None,
    now: datetime | None = None,
    store: Store | None = None,
) -> Created:
    """Dump the database at ``url`` into ``folder`` as ``shorty-<UTC time>.dump``,
    upload it to ``store``'s bucket when given, then delete all but the ``keep`` newest
    backups in the folder and in the bucket (when ``keep`` is given).

    The dump is written under a hidden ``.partial`` name and renamed only once pg_dump
    has succeeded and pg_restore reads the archive back: a failed, overrun or killed
    dump never looks like a backup. A failed dump or upload deletes nothing."""
    conn = connection(url)
    pg_dump, pg_restore = find_tool("pg_dump", pg_bin), find_tool("pg_restore", pg_bin)
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(folder, older_than=timeout)
    final = folder / backup_name(now or datetime.now(UTC))
    if final.exists():
        raise BackupError(f"{final} exists already (one backup per second at most)")
    partial = partial_path(final)
    try:
        run_tool(
            [
                str(pg_dump.path),
                "--format=custom",
                "--no-password",
                f"--file={partial}",
                f"--dbname={conn.dsn}",
            ],
            conn,
            timeout,
        )
        run_tool([str(pg_restore.path), "--list", str(partial)], conn, timeout)
        _sync(partial)
        os.replace(partial, final)
        _sync(folder)
    finally:
        partial.unlink(missing_ok=True)
    uploaded = store.upload(final) if store is not None else None
    pruned = prune(folder, keep) if keep is not None else []
    pruned_remote = store.prune(keep) if store is not None and keep is not None else []
    return Created(final, final.stat().st_size, pruned, uploaded, pruned_remote)


def _sync(path: Path) -> None:
    """Flush ``path`` (a file, or a folder's entries) to disk: a backup that is
    renamed into place but lost in a crash would be a backup in name only."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def newest_backup(folder: Path) -> Path:
    found = backups_in(folder)
    if not found:
        raise BackupError(f"no backups (shorty-*.dump) in {folder}")
    return found[-1].path


def restore_backup(
    url: str,
    archive: Path,
    *,
    clean: bool,
    create_database: bool = False,
    timeout: float,
    pg_bin: Path | None = None,
) -> None:
    """Restore ``archive`` into the database at ``url``, all or nothing (one
    transaction; objects owned by the user of ``url``, grants left out).

    A database that already holds relations is refused (NotEmpty) unless ``clean``:
    then the archive's objects are dropped and made again; others stay. With
    ``create_database``, a missing database is created first."""
    conn = connection(url)
    pg_restore, psql_tool = find_tool("pg_restore", pg_bin), find_tool("psql", pg_bin)
    if not archive.is_file():
        raise BackupError(f"{archive}: no such backup file")
    relations = asyncio.run(_count_relations(url, create_database, min(timeout, 30)))
    if relations and not clean:
        raise NotEmpty(
            f"the target database is not empty ({relations} tables, views or sequences);"
            " restore into an empty one, or pass --clean to drop and recreate"
            " the backup's objects"
        )
    listing = run_tool([str(pg_restore.path), "--list", str(archive)], conn, timeout)
    script = [str(pg_restore.path), "--no-owner", "--no-privileges", "--file=-", str(archive)]
    psql = [str(psql_tool.path), "--no-psqlrc", "--quiet", "--no-password"]
    psql += ["--set=ON_ERROR_STOP=1", f"--dbname={conn.dsn}"]
    before = emptying(listing) if clean else ""
    run_into_psql(script, psql, conn, before, timeout)


def emptying(listing: str) -> str:
    """SQL that drops the schemas holding the archive's objects (``pg_restore --list``),
    with all they hold, and makes again those the archive does not create (public)."""
    schemas = set(
        re.findall(
            r"^\d+; \d+ \d+ (?:TABLE|SEQUENCE|FUNCTION|VIEW|TYPE) (\S+) ", listing, re.MULTILINE
        )
    )
    created = set(re.findall(r"^\d+; \d+ \d+ SCHEMA - (\S+) ", listing, re.MULTILINE))
    statements = [f"DROP SCHEMA IF EXISTS {_ident(s)} CASCADE;" for s in sorted(schemas)]
    statements += [f"CREATE SCHEMA {_ident(s)};" for s in sorted(schemas - created)]
    return "\n".join(statements)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _count_relations(url: str, create: bool, wait: float) -> int:
    try:
        try:
            conn = await asyncpg.connect(url, timeout=wait)
        except asyncpg.InvalidCatalogNameError:
            if not create:
                raise
            await _create_database(url, wait)
            return 0
        try:
            return int(await conn.fetchval(OWN_RELATIONS, timeout=wait))
        finally:
            await conn.close(timeout=wait)
    except asyncpg.InvalidCatalogNameError:
        raise BackupError(
            "the target database does not exist; create it, or pass --create-database"
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise BackupError(
            f"cannot reach the target database ({type(exc).__name__}:"
            f" {connection(url).redact(str(exc))})"
        ) from None


async def _create_database(url: str, wait: float) -> None:
    """Create the database ``url`` names, from the server's ``postgres`` database."""
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise BackupError("the database URL names no database")
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=wait)
    try:
        await conn.execute(f"CREATE DATABASE {_ident(name)}", timeout=wait)
    finally:
        await conn.close(timeout=wait)
