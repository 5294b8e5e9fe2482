"""The ``shorty`` command: run the services, migrate, manage users, API keys and the
dead-letter stream, run fault-injection experiments, back up and restore the database,
load the logging stack's Elasticsearch and Kibana configuration.

One module per command group; each declares its commands, and ``main`` gathers them.
What they share: ``config.py`` (settings, ``--data-dir``) and ``servers.py`` (the
database or Redis a command opens, runs one coroutine on and closes)."""

from __future__ import annotations

import click

from shorty import __version__
from shorty.cli.backup import backup
from shorty.cli.chaos import chaos
from shorty.cli.config import check_opentelemetry_imports
from shorty.cli.dev import dev
from shorty.cli.dlq import dlq
from shorty.cli.elk import elk
from shorty.cli.keys import apikey
from shorty.cli.migrate import migrate
from shorty.cli.serve import serve
from shorty.cli.users import user

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shorty")
def main() -> None:
    """Shorty, a Kubernetes-native URL shortener.

    Settings come from SHORTY_* environment variables (see README).
    """
    check_opentelemetry_imports()


for command in (dev, serve, migrate, user, apikey, dlq, chaos, backup, elk):
    main.add_command(command)
