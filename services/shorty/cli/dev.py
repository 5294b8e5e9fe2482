"""``shorty dev``: the whole stack on this machine (the work is in ``shorty.dev``)."""

from __future__ import annotations

from pathlib import Path

import click

from shorty import embedded
from shorty.cli.config import data_dir_option, settings
from shorty.cli.servers import domain_errors


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface of every service and of their metrics.",
)
@click.option("--api-port", default=8000, show_default=True, help="Port of the API service.")
@click.option("--redirect-port", default=8080, show_default=True, help="Port of the redirects.")
@data_dir_option
@domain_errors
def dev(host: str, api_port: int, redirect_port: int, data_dir: Path) -> None:
    """Run everything locally: embedded PostgreSQL and Redis, migrations, API,
    redirect service and worker. Prints the URLs, an admin login and an API key.

    A service that exits is started again after a backoff (one line each time);
    five crashes in a row, each within 30 s of its start, stop everything.
    Ctrl-C or SIGTERM stops the services, then the servers, and exits 0.

    Each service's metrics get a port of their own: 9100, 9101, 9102, or free
    ones when those are taken (none with SHORTY_METRICS_PORT=0)."""
    from shorty.dev import run_dev

    try:
        run_dev(
            settings(),
            host=host,
            api_port=api_port,
            redirect_port=redirect_port,
            data_dir=data_dir,
        )
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from None
