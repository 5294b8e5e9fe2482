"""``shorty user create``: accounts made from the command line."""

from __future__ import annotations

from pathlib import Path

import click

from shorty.cli.config import data_dir_option, settings
from shorty.cli.servers import domain_errors, with_pool


@click.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--email", required=True, help="The user's email (their login).")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for if not given. At least 10 characters.",
)
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@data_dir_option
@domain_errors
def user_create(email: str, password: str, admin: bool, data_dir: Path) -> None:
    """Create a user who can log in and own links."""
    from shorty.store.users import UserStore

    created = with_pool(
        settings(),
        data_dir,
        lambda pool: UserStore(pool).create(email, password, role="admin" if admin else "user"),
    )
    click.echo(f"Created {created.role} {created.email} (id {created.id}).")
