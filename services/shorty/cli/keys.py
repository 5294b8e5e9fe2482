"""``shorty apikey create|list|revoke``: API keys (sent as 'Authorization: Bearer <key>')."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shorty.cli.config import data_dir_option, settings
from shorty.cli.servers import domain_errors, with_pool
from shorty.core.accounts import DEFAULT_SCOPES, SCOPES

if TYPE_CHECKING:
    import asyncpg

    from shorty.core.accounts import ApiKey


@click.group()
def apikey() -> None:
    """Manage API keys (sent as 'Authorization: Bearer <key>')."""


@apikey.command("create")
@click.option("--email", required=True, help="The user the key acts as.")
@click.option("--name", default="", help="A label to tell keys apart.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(sorted(SCOPES)),
    help=f"Repeat for several (default: {', '.join(DEFAULT_SCOPES)}).",
)
@click.option(
    "--create-user",
    is_flag=True,
    help="If no user has this email, create one without a password: it cannot log "
    "in, it acts only through its keys (for a service such as the operator).",
)
@data_dir_option
@domain_errors
def apikey_create(
    email: str, name: str, scopes: tuple[str, ...], create_user: bool, data_dir: Path
) -> None:
    """Create a key and print it. It is shown only this once.

    A key holds only scopes its owner's role grants: 'admin' only for an admin
    (`shorty user create --admin`). Each user holds at most SHORTY_MAX_KEYS_PER_USER
    live keys. Only the key goes to standard output, so
    KEY=$(shorty apikey create ...) keeps it."""
    from shorty.core.accounts import check_key_name, check_scopes_for_role
    from shorty.core.errors import InvalidAccount
    from shorty.store.keys import KeyStore
    from shorty.store.users import UserStore

    config = settings()
    wanted = scopes or DEFAULT_SCOPES

    async def create(pool: asyncpg.Pool) -> str:
        users = UserStore(pool)
        owner = await users.by_email(email)
        if owner is None and not create_user:
            raise InvalidAccount(f"No user has the email '{email}'.")
        if owner is None:
            # Refuse before creating anyone, so a bad name or scope leaves no account.
            check_key_name(name)
            check_scopes_for_role(wanted, "user")
            owner = await users.create(email, None)
            click.echo(
                f"Created user {owner.email} (id {owner.id}) without a password: it cannot"
                " log in, it acts only through its API keys.",
                err=True,
            )
        _, raw = await KeyStore(pool, max_live=config.max_keys_per_user).create(
            owner.id, name=name, scopes=wanted
        )
        return raw

    click.echo(with_pool(config, data_dir, create))


@apikey.command("list")
@click.option("--email", default=None, help="Only this user's keys.")
@data_dir_option
@domain_errors
def apikey_list(email: str | None, data_dir: Path) -> None:
    """List keys (prefix only; the full key is never stored)."""
    from shorty.store.keys import KeyStore
    from shorty.store.users import UserStore

    async def fetch(pool: asyncpg.Pool) -> list[ApiKey]:
        owner_id = None
        if email is not None:
            owner = await UserStore(pool).by_email(email)
            if owner is None:
                return []
            owner_id = owner.id
        return await KeyStore(pool).list(user_id=owner_id)

    keys = with_pool(settings(), data_dir, fetch)
    rows = [("ID", "PREFIX", "OWNER", "NAME", "SCOPES", "CREATED", "STATUS")]
    for key in keys:
        status = "revoked" if key.revoked_at else "active"
        if (
            key.expires_at
            and status == "active"
            and key.expires_at < datetime.now(key.expires_at.tzinfo)
        ):
            status = "expired"
        rows.append(
            (
                str(key.id),
                key.prefix + "...",
                key.email,
                key.name or "-",
                ",".join(key.scopes),
                key.created_at.strftime("%Y-%m-%d %H:%M"),
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@apikey.command("revoke")
@click.argument("key")
@data_dir_option
@domain_errors
def apikey_revoke(key: str, data_dir: Path) -> None:
    """Revoke the key with this id or visible prefix (as `apikey list` shows it), and
    every key it minted."""
    from shorty.store.keys import KeyStore

    revoked = with_pool(
        settings(), data_dir, lambda pool: KeyStore(pool).revoke(key.removesuffix("..."))
    )
    click.echo(f"Revoked key {revoked.id} ({revoked.prefix}...) of {revoked.email}.")
