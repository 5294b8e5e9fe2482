"""``shorty migrate``: bring the database schema up to date (Alembic, ``store/migrate.py``)."""

from __future__ import annotations

from pathlib import Path

import click

from shorty.cli.config import data_dir_option, settings
from shorty.cli.servers import domain_errors, server_url


@click.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option(
    "--allow-newer",
    is_flag=True,
    help="Exit 0 without migrating when the database is at a revision newer than this"
    " release knows (a rollback runs the previous release on the newer schema); without"
    " it, that is an error.",
)
@data_dir_option
@domain_errors
def migrate(revision: str, allow_newer: bool, data_dir: Path) -> None:
    """Bring the database schema up to date (safe to run repeatedly and concurrently)."""
    from shorty.store import migrate as migrations

    with server_url(settings(), data_dir, "database") as url:
        newer = migrations.newer_than_code(url)
        if newer:
            what = f"the database is at {', '.join(newer)}, newer than this release knows"
            if not allow_newer:
                raise click.ClickException(f"{what} (--allow-newer accepts that)")
            click.echo(f"Nothing to do: {what}.")
            return
        migrations.upgrade(url, revision)
    click.echo(f"Database migrated to {revision}.")
