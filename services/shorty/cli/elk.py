"""``shorty elk setup``: load Shorty's Elasticsearch and Kibana configuration (the
files under ``elk/``): ILM policy, templates, the Logstash user and the Kibana saved
objects. Run by the chart's Logstash and Kibana init containers (``--part
elasticsearch``) and its hook Job (``--part all``); docs/logging.md.

Exit codes: 0 done, 1 failed (one line on stderr), 2 usage or settings."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import click

from shorty.elk import SetupError
from shorty.elk import setup as steps
from shorty.elk.endpoint import Deadline, Endpoint
from shorty.elk.files import elasticsearch_files, saved_objects
from shorty.elk.lifecycle import Lifecycle, TimeValue, time_value

PARTS = ("elasticsearch", "kibana", "all")
# The variables the passwords are read from.
LOGIN_VAR = "SHORTY_ELK_PASSWORD"
LOGSTASH_VAR = "SHORTY_ELK_LOGSTASH_PASSWORD"
KIBANA_SYSTEM_VAR = "SHORTY_ELK_KIBANA_SYSTEM_PASSWORD"


class Failed(click.ClickException):
    exit_code = 1


def parse_time_value(ctx: click.Context, param: click.Parameter, value: str) -> TimeValue:
    try:
        return time_value(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def base_url(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL", param_hint=option)
    return value


def secret(name: str) -> str:
    """A password, from the environment only: an option's value is visible to ``ps``."""
    value = os.environ.get(name, "")
    if not value:
        raise click.UsageError(f"{name} is not set (passwords are read from the environment only)")
    return value


@click.group()
def elk() -> None:
    """Shorty's Elasticsearch and Kibana configuration (docs/logging.md)."""


@elk.command("setup")
@click.option(
    "--part",
    type=click.Choice(PARTS),
    default="all",
    show_default=True,
    help="elasticsearch: ILM policy, templates, role, users; kibana: saved objects; all: both.",
)
@click.option(
    "--config-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default="elk",
    envvar="SHORTY_ELK_CONFIG_DIR",
    show_envvar=True,
    show_default=True,
    help="The repository's elk/ folder, or the flat folder of its elasticsearch/ and "
    "kibana/ files that the chart mounts.",
)
@click.option(
    "--elasticsearch-url",
    envvar="SHORTY_ELK_ELASTICSEARCH_URL",
    show_envvar=True,
    help="Elasticsearch's URL, e.g. https://shorty-elasticsearch:9200 "
    "(needed for --part elasticsearch and all).",
)
@click.option(
    "--kibana-url",
    envvar="SHORTY_ELK_KIBANA_URL",
    show_envvar=True,
    help="Kibana's URL with its base path, if any (needed for --part kibana and all).",
)
@click.option(
    "--username",
    default="elastic",
    envvar="SHORTY_ELK_USERNAME",
    show_envvar=True,
    show_default=True,
    help=f"The user that logs in to both (its password: {LOGIN_VAR}).",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="SHORTY_ELK_CA_FILE",
    show_envvar=True,
    help="PEM file of the CA that signed their certificates [default: the system's CAs].",
)
@click.option(
    "--retention",
    metavar="TIME",
    callback=parse_time_value,
    default="14d",
    envvar="SHORTY_ELK_RETENTION",
    show_envvar=True,
    show_default=True,
    help="Age after rollover at which an index is deleted (ILM delete min_age), "
    "an Elasticsearch time value: 14d, 36h.",
)
@click.option(
    "--warm-after",
    metavar="TIME",
    callback=parse_time_value,
    default="2d",
    envvar="SHORTY_ELK_WARM_AFTER",
    show_envvar=True,
    show_default=True,
    help="Age after rollover at which an index moves to the warm phase (less than --retention).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600,
    envvar="SHORTY_ELK_TIMEOUT",
    show_envvar=True,
    show_default=True,
    help="Seconds the whole run may take, all waiting for the servers included.",
)
@click.option(
    "--request-timeout",
    type=click.FloatRange(min=1),
    default=30,
    envvar="SHORTY_ELK_REQUEST_TIMEOUT",
    show_envvar=True,
    show_default=True,
    help="Seconds one request may wait for its answer.",
)
def elk_setup(
    part: str,
    config_dir: Path,
    elasticsearch_url: str | None,
    kibana_url: str | None,
    username: str,
    ca_file: Path | None,
    retention: TimeValue,
    warm_after: TimeValue,
    timeout: float,
    request_timeout: float,
) -> None:
    """Load the ILM policy, index and component templates, the Logstash writer role and
    user and the kibana_system password into Elasticsearch, and the saved objects
    (data views, searches, dashboard) into Kibana. Safe to run again: each step
    replaces what it set before.

    Waits for each server (within --timeout), trying again after connection errors,
    5xx and 429; a refused login (401, 403) or a refused body (4xx) stops it at once.

    \b
    Passwords, from the environment only:
      SHORTY_ELK_PASSWORD                the --username user's
      SHORTY_ELK_LOGSTASH_PASSWORD       set for the user shorty_logstash
      SHORTY_ELK_KIBANA_SYSTEM_PASSWORD  set for the built-in user kibana_system

    Exit codes: 0 done, 1 failed, 2 usage or settings."""
    do_elasticsearch, do_kibana = part in ("elasticsearch", "all"), part in ("kibana", "all")
    es_url = base_url(elasticsearch_url, "--elasticsearch-url")
    kibana_base = base_url(kibana_url, "--kibana-url")
    if do_elasticsearch and es_url is None:
        raise click.UsageError(f"--part {part} needs --elasticsearch-url")
    if do_kibana and kibana_base is None:
        raise click.UsageError(f"--part {part} needs --kibana-url")
    try:
        lifecycle = Lifecycle(retention, warm_after)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--warm-after") from None
    password = secret(LOGIN_VAR)
    passwords = (
        steps.Passwords(secret(LOGSTASH_VAR), secret(KIBANA_SYSTEM_VAR))
        if do_elasticsearch
        else None
    )
    try:
        # Every file is read and checked before the first request.
        es_files = elasticsearch_files(config_dir) if do_elasticsearch else None
        objects = saved_objects(config_dir) if do_kibana else None
        deadline = Deadline(timeout)

        def endpoint(name: str, url: str, headers: dict[str, str] | None = None) -> Endpoint:
            return Endpoint(
                name,
                url,
                username=username,
                password=password,
                ca_file=ca_file,
                request_timeout=request_timeout,
                deadline=deadline,
                say=click.echo,
                headers=headers,
            )

        if es_files is not None and passwords is not None and es_url is not None:
            es = endpoint("Elasticsearch", es_url)
            steps.elasticsearch(es, es_files, lifecycle, passwords, click.echo)
        if objects is not None and kibana_base is not None:
            kb = endpoint("Kibana", kibana_base, {"kbn-xsrf": "true"})
            steps.kibana(kb, objects, click.echo)
    except SetupError as exc:
        raise Failed(str(exc)) from None
