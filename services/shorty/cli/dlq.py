"""``shorty dlq list|show|replay|purge``: the worker's dead-letter stream
(``worker/dlq.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from shorty.cli.config import data_dir_option, settings
from shorty.cli.servers import with_redis

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from shorty.worker.dlq import Letter


@click.group()
def dlq() -> None:
    """The dead-letter stream: stream entries that failed every delivery.

    Fix the cause (the error says what it was), then `replay` the letters; the
    consumers are idempotent, so a letter replayed twice still counts once.
    """


def _letter_ids(ids: tuple[str, ...]) -> None:
    """Refuse anything that is not a stream entry ID, before reaching Redis."""
    from shorty.worker.dlq import LETTER_ID

    bad = [one for one in ids if not LETTER_ID.fullmatch(one)]
    if bad:
        raise click.UsageError(
            f"Not a letter ID: {', '.join(bad)} (IDs look like 1795322038334-0)."
        )


def _chosen(ids: tuple[str, ...], every: bool) -> list[str] | None:
    """The letter IDs named, or None for ``--all``; exactly one of the two."""
    if every == bool(ids):
        raise click.UsageError("Name letter IDs, or pass --all (not both).")
    _letter_ids(ids)
    return None if every else list(ids)


@dlq.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--after", default="-", help="Start after this letter ID (for paging).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_dir_option
def dlq_list(limit: int, after: str, as_json: bool, data_dir: Path) -> None:
    """List letters, oldest first."""
    from shorty.worker import dlq as letters

    if after != "-":
        _letter_ids((after,))

    async def fetch(client: Redis) -> tuple[int, list[Letter]]:
        return await letters.size(client), await letters.letters(client, count=limit, after=after)

    total, page = with_redis(settings(), data_dir, fetch)
    if as_json:
        for one in page:
            click.echo(json.dumps(one.describe()))
        return
    click.echo(f"{total} letter(s) in the dead-letter stream.")
    for one in page:
        when = one.failed_at.strftime("%Y-%m-%d %H:%M:%S") if one.failed_at else "?"
        error = one.error if len(one.error) <= 80 else one.error[:77] + "..."
        click.echo(f"{one.id}  {when}  {one.stream}/{one.group}  x{one.deliveries}  {error}")


@dlq.command("show")
@click.argument("letter_id")
@data_dir_option
def dlq_show(letter_id: str, data_dir: Path) -> None:
    """Show one letter in full, as JSON."""
    from shorty.worker import dlq as letters

    _letter_ids((letter_id,))
    found = with_redis(settings(), data_dir, lambda client: letters.letter(client, letter_id))
    if found is None:
        raise click.ClickException(f"No letter {letter_id} in the dead-letter stream.")
    click.echo(json.dumps(found.describe(), indent=2))


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Replay every letter.")
@data_dir_option
def dlq_replay(ids: tuple[str, ...], every: bool, data_dir: Path) -> None:
    """Write letters back to their streams (after fixing what made them fail)."""
    from shorty.worker import dlq as letters

    wanted = _chosen(ids, every)

    async def run(client: Redis) -> tuple[int, list[str]]:
        if wanted is None:
            replayed = 0
            async for page in letters.each_page(client):
                replayed += len(await letters.replay(client, page))
            return replayed, []
        found = [await letters.letter(client, one) for one in wanted]
        missing = [one for one, letter in zip(wanted, found, strict=True) if letter is None]
        return len(await letters.replay(client, [f for f in found if f is not None])), missing

    try:
        replayed, missing = with_redis(settings(), data_dir, run)
    except letters.NotReplayable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Replayed {replayed} letter(s).")
    if missing:
        raise click.ClickException(f"Not found: {', '.join(missing)}")


@dlq.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Delete every letter.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
def dlq_purge(ids: tuple[str, ...], every: bool, yes: bool, data_dir: Path) -> None:
    """Delete letters for good."""
    from shorty.worker import dlq as letters

    wanted = _chosen(ids, every)
    what = "every letter" if wanted is None else f"{len(wanted)} letter(s)"
    if not yes:
        click.confirm(f"Delete {what} from the dead-letter stream for good?", abort=True)
    purged = with_redis(settings(), data_dir, lambda client: letters.purge(client, wanted))
    click.echo(f"Purged {purged} letter(s).")
