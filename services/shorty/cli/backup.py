"""``shorty backup create|list|restore``: ``pg_dump -Fc`` archives of the database in
a folder and/or an S3-compatible bucket, kept by count, and restored with
``pg_restore`` (docs/backup.md).

Exit codes: 0 done, 1 failed (dump, restore, server unreachable, tool missing,
timeout), 2 usage or settings, 3 restore refused: the target database is not empty."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shorty.backup.bucket import SCHEME, Bucket, bucket, split_uri
from shorty.backup.files import NAME
from shorty.backup.pgtools import BackupError
from shorty.cli.config import F, data_dir_option, settings
from shorty.cli.servers import server_url

if TYPE_CHECKING:
    from shorty.backup.bucket import Store

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


def s3_options(func: F) -> F:
    """The bucket: its name and prefix, and where it is (credentials: AWS_* only)."""
    for name, help_text in reversed(
        [
            ("bucket", "S3-compatible bucket of the backups [default: none, no upload]."),
            ("prefix", "Folder-like key prefix in the bucket, e.g. shorty/prod."),
            ("endpoint", "Endpoint URL of a service other than AWS (MinIO, Ceph, R2...)."),
            ("region", "Region of the bucket [default: boto3's, AWS_REGION]."),
        ]
    ):
        func = click.option(
            f"--s3-{name}",
            envvar=f"SHORTY_BACKUP_S3_{name.upper()}",
            help=f"{help_text} [env: SHORTY_BACKUP_S3_{name.upper()}]",
        )(func)
    return func


def configured_bucket(
    s3_bucket: str | None, s3_prefix: str | None, s3_endpoint: str | None, s3_region: str | None
) -> Bucket | None:
    if not s3_bucket:
        return None
    try:
        return bucket(s3_bucket, s3_prefix or "", s3_endpoint, s3_region)
    except BackupError as exc:
        raise click.BadParameter(str(exc), param_hint="--s3-bucket") from None


def open_store(where: Bucket) -> Store:
    """A client of the bucket; the s3 extra must be installed."""
    from shorty.backup.bucket import Store

    try:
        return Store(where)
    except ImportError:
        raise click.UsageError("S3 needs boto3: pip install 'shorty[s3]'") from None
    except BackupError as exc:
        raise Failed(str(exc)) from None


def location(text: str, s3_endpoint: str | None, s3_region: str | None) -> Bucket | Path:
    """``s3://bucket/prefix`` or a folder path."""
    if not text.startswith(SCHEME):
        return Path(text)
    name, key = split_uri(text)
    try:
        return bucket(name, key, s3_endpoint, s3_region)
    except BackupError as exc:
        raise click.BadParameter(str(exc)) from None


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
    envvar="SHORTY_BACKUP_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder of the backups (created if missing) [env: SHORTY_BACKUP_DIR; "
    "required unless --s3-bucket].",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    envvar="SHORTY_BACKUP_KEEP",
    help="Then delete all but the N newest backups in the folder and in the bucket "
    "(only shorty-*.dump names) [env: SHORTY_BACKUP_KEEP; default: delete none].",
)
@s3_options
@database_options
def backup_create(
    folder: Path | None,
    keep: int | None,
    s3_bucket: str | None,
    s3_prefix: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    database_url: str | None,
    pg_bin: Path | None,
    timeout: float,
    data_dir: Path,
) -> None:
    """Dump the database to FOLDER/shorty-<UTC time>.dump (pg_dump -Fc), upload it to
    the bucket if one is set, and print its path (or its s3:// URI, with no folder).

    The archive is written under a hidden .partial name and renamed once pg_dump has
    succeeded and pg_restore reads it back; it is uploaded and its size in the bucket
    checked before anything is pruned. A failed dump or upload prunes nothing. With a
    bucket and no --to, the archive is written under TMPDIR and removed once uploaded.
    """
    from shorty.backup.jobs import create_backup

    where = configured_bucket(s3_bucket, s3_prefix, s3_endpoint, s3_region)
    if folder is None and where is None:
        raise click.UsageError("give --to DIR or --s3-bucket (SHORTY_BACKUP_DIR, _S3_BUCKET)")
    store = open_store(where) if where is not None else None
    with database(database_url, data_dir) as url, _folder_or_temporary(folder) as into:
        try:
            made = create_backup(url, into, keep=keep, timeout=timeout, pg_bin=pg_bin, store=store)
        except BackupError as exc:
            raise Failed(f"backup failed: {exc}") from None
    for gone in [*(made.pruned if folder else []), *made.pruned_remote]:
        click.echo(f"Deleted {gone} (beyond --keep {keep}).", err=True)
    if folder is not None:
        click.echo(f"Backed up to {made.path} ({made.size} bytes).", err=True)
    if made.uploaded is not None:
        click.echo(f"Uploaded to {made.uploaded.uri} ({made.uploaded.size} bytes).", err=True)
    click.echo(str(made.path) if folder is not None or made.uploaded is None else made.uploaded.uri)


@contextmanager
def _folder_or_temporary(folder: Path | None) -> Iterator[Path]:
    if folder is not None:
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="shorty-backup-") as temporary:
        yield Path(temporary)


@backup.command("list")
@click.option(
    "--from",
    "source",
    envvar="SHORTY_BACKUP_DIR",
    help="Folder of the backups, or s3://BUCKET/PREFIX [env: SHORTY_BACKUP_DIR; "
    "default: the --s3-bucket].",
)
@s3_options
def backup_list(
    source: str | None,
    s3_bucket: str | None,
    s3_prefix: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
) -> None:
    """List the backups in a folder or a bucket, oldest first: UTC time, bytes, path
    (or s3:// URI, which `restore` takes)."""
    from shorty.backup.files import backups_in

    where = (
        location(source, s3_endpoint, s3_region)
        if source
        else configured_bucket(s3_bucket, s3_prefix, s3_endpoint, s3_region)
    )
    if where is None:
        raise click.UsageError("give --from DIR|s3://BUCKET/PREFIX or --s3-bucket")
    if isinstance(where, Path):
        if not where.is_dir():
            raise click.BadParameter(f"{where}: no such folder", param_hint="--from")
        rows = [(b.taken_at, b.size, str(b.path)) for b in backups_in(where)]
        named = str(where)
    else:
        try:
            rows = [(b.taken_at, b.size, b.uri) for b in open_store(where).backups()]
        except BackupError as exc:
            raise Failed(str(exc)) from None
        named = where.uri()
    if not rows:
        click.echo(f"No backups in {named}.", err=True)
    for taken_at, size, path in rows:
        click.echo(f"{taken_at:%Y-%m-%dT%H:%M:%SZ}  {size:>12}  {path}")


@backup.command("restore")
@click.argument("archive")
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
@s3_options
@database_options
def backup_restore(
    archive: str,
    clean: bool,
    create_database: bool,
    s3_bucket: str | None,
    s3_prefix: str | None,
    s3_endpoint: str | None,
    s3_region: str | None,
    database_url: str | None,
    pg_bin: Path | None,
    timeout: float,
    data_dir: Path,
) -> None:
    """Restore ARCHIVE into the database, in one transaction: all of it or nothing.

    ARCHIVE is a shorty-*.dump file, a folder (its newest backup), or in a bucket
    s3://BUCKET/PREFIX/shorty-<time>.dump or s3://BUCKET/PREFIX (its newest), which
    is downloaded under TMPDIR first (--s3-endpoint and --s3-region say where the
    bucket is). An empty target is required unless --clean (exit 3 otherwise).
    Objects are owned by the user of the database URL; grants are not restored."""
    from shorty.backup.jobs import NotEmpty, restore_backup

    source = location(archive, s3_endpoint, s3_region)
    if isinstance(source, Path) and not source.exists():
        raise click.BadParameter(f"{archive}: no such file or folder", param_hint="ARCHIVE")
    try:
        with _fetched(source) as chosen, database(database_url, data_dir) as url:
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
    click.echo(f"Restored {archive if isinstance(source, Bucket) else chosen}.", err=True)


@contextmanager
def _fetched(source: Path | Bucket) -> Iterator[Path]:
    """The archive to restore: a file, a folder's newest, or a bucket's object (named,
    or the newest under the prefix) downloaded into a temporary folder."""
    from shorty.backup.jobs import newest_backup

    if isinstance(source, Path):
        yield newest_backup(source) if source.is_dir() else source
        return
    store = open_store(source)
    named = source.prefix.rstrip("/")  # s3://bucket/prefix/shorty-<time>.dump, or a prefix
    key = named if NAME.fullmatch(named.rpartition("/")[2]) else store.newest().key
    with tempfile.TemporaryDirectory(prefix="shorty-restore-") as temporary:
        yield store.download(key, Path(temporary))
