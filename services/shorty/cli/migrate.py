"""``shorty migrate``: bring the database schema up to date (Alembic, ``store/migrate.py``)."""

from __future__ import annotations

from pathlib import Path

import click

from shorty.cli.config import data_dir_option, settings
from shorty.cli.servers import domain_errors, server_url


@click.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@data_dir_option
@domain_errors
def migrate(revision: str, data_dir: Path) -> None:
    """Bring the database schema up to date (safe to run repeatedly and concurrently)."""
    from shorty.store import migrate as migrations

    with server_url(settings(), data_dir, "database") as url:
        migrations.upgrade(url, revision)
    click.echo(f"Database migrated to {revision}.")
