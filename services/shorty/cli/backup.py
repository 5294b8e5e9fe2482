"""``shorty backup create|list|restore``: ``pg_dump -Fc`` archives of the database in
a folder, kept by count, and restored with ``pg_restore`` (docs/backup.md).

Exit codes: 0 done, 1 failed (dump, restore, server unreachable, tool missing,
timeout), 2 usage or settings, 3 restore refused: the target database is not empty."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from shorty.backup.pgtools import BackupError
from shorty.cli.config import F, data_dir_option, settings
from shorty.cli.servers import server_url

NOT_EMPTY = 3


class Failed(click.ClickException):
    exit_code = 1


class Refused(click.ClickException):
    exit_code = NOT_EMPTY


def database_options(func: F) -> F:
    """What create and restore share: the database, the tools, the deadline."""
    func = click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        default=3600,
        envvar="SHORTY_BACKUP_TIMEOUT",
        show_default=True,
        help="Seconds pg_dump / pg_restore may run before they are stopped (a failure).",
    )(func)
    func = click.option(
        "--pg-bin",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        envvar="SHORTY_BACKUP_PG_BIN",
        help="Folder of pg_dump and pg_restore [default: the newest on PATH, in "
        "/usr/lib/postgresql/*/bin or the embedded server's].",
    )(func)
    func = click.option(
        "--database-url",
        envvar="SHORTY_DATABASE_URL",
        help="PostgreSQL URL [default: SHORTY_DATABASE_URL; unset: the embedded server "
        "under --data-dir]. Prefer the variable: an option is visible to `ps`.",
    )(func)
    return data_dir_option(func)


@contextmanager
def database(url: str | None, data_dir: Path) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with server_url(settings(), data_dir, "database") as found:
        yield found


@click.group()
def backup() -> None:
    """Back up and restore the database (pg_dump / pg_restore; docs/backup.md).

    Exit codes: 0 done, 1 failed, 2 usage, 3 restore refused (target not empty)."""


@backup.command("create")
@click.option(
    "--to",
    "folder",
    required=True,
    envvar="SHORTY_BACKUP_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the backups (created if missing) [env: SHORTY_BACKUP_DIR].",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    envvar="SHORTY_BACKUP_KEEP",
    help="Then delete all but the N newest backups in the folder (only shorty-*.dump "
    "files) [env: SHORTY_BACKUP_KEEP; default: delete none].",
)
@database_options
def backup_create(
    folder: Path,
    keep: int | None,
    database_url: str | None,
    pg_bin: Path | None,
    timeout: float,
    data_dir: Path,
) -> None:
    """Dump the database to FOLDER/shorty-<UTC time>.dump (pg_dump -Fc) and print its
    path.

    The archive is written under a hidden .partial name and renamed once pg_dump has
    succeeded and pg_restore reads it back: a failed dump leaves no backup-looking
    file and prunes nothing."""
    from shorty.backup.jobs import create_backup

    with database(database_url, data_dir) as url:
        try:
            made = create_backup(url, folder, keep=keep, timeout=timeout, pg_bin=pg_bin)
        except BackupError as exc:
            raise Failed(f"backup failed: {exc}") from None
    for path in made.pruned:
        click.echo(f"Deleted {path} (beyond --keep {keep}).", err=True)
    click.echo(f"Backed up to {made.path} ({made.size} bytes).", err=True)
    click.echo(str(made.path))


@backup.command("list")
@click.option(
    "--from",
    "folder",
    required=True,
    envvar="SHORTY_BACKUP_DIR",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder of the backups [env: SHORTY_BACKUP_DIR].",
)
def backup_list(folder: Path) -> None:
    """List the backups in a folder, oldest first: UTC time, bytes, path."""
    from shorty.backup.files import backups_in

    found = backups_in(folder)
    if not found:
        click.echo(f"No backups in {folder}.", err=True)
    for item in found:
        click.echo(f"{item.taken_at:%Y-%m-%dT%H:%M:%SZ}  {item.size:>12}  {item.path}")


@backup.command("restore")
@click.argument("archive", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--clean",
    is_flag=True,
    help="Restore into a database that is not empty: drop the backup's objects there "
    "first and make them again (other objects stay).",
)
@click.option(
    "--create-database",
    is_flag=True,
    help="Create the target database if it does not exist (needs CREATEDB).",
)
@database_options
def backup_restore(
    archive: Path,
    clean: bool,
    create_database: bool,
    database_url: str | None,
    pg_bin: Path | None,
    timeout: float,
    data_dir: Path,
) -> None:
    """Restore ARCHIVE (a shorty-*.dump file, or a folder: its newest backup) into the
    database, in one transaction: all of it or nothing.

    An empty target is required unless --clean (exit 3 otherwise). Objects are owned
    by the user of the database URL; grants are not restored."""
    from shorty.backup.jobs import NotEmpty, newest_backup, restore_backup

    try:
        chosen = newest_backup(archive) if archive.is_dir() else archive
        with database(database_url, data_dir) as url:
            restore_backup(
                url,
                chosen,
                clean=clean,
                create_database=create_database,
                timeout=timeout,
                pg_bin=pg_bin,
            )
    except NotEmpty as exc:
        raise Refused(f"restore refused: {exc}") from None
    except BackupError as exc:
        raise Failed(f"restore failed: {exc}") from None
    click.echo(f"Restored {chosen}.", err=True)
