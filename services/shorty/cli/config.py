"""What every ``shorty`` command shares: reading the settings, and ``--data-dir``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from shorty.settings import Settings, SettingsError, load_settings

F = TypeVar("F", bound=Callable[..., Any])


class BadSettings(click.ClickException):
    """Invalid SHORTY_* variables: one line each, exit code 2 (like a usage error)."""

    exit_code = 2

    def __init__(self, error: SettingsError) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  {line}" for line in error.problems))


def settings() -> Settings:
    """The SHORTY_* settings, read once per command; a bad value stops it."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise BadSettings(exc) from None


def server_settings() -> Settings:
    """Settings for a service: SHORTY_DATABASE_URL and SHORTY_REDIS_URL required."""
    config = settings()
    try:
        config.require_servers()
    except SettingsError as exc:
        raise BadSettings(exc) from None
    return config


def check_opentelemetry_imports() -> None:
    """The OTEL_* variables OpenTelemetry reads as it is imported (span limits, the
    propagators), checked before any command imports it: a bad one stops the command
    with one line each, not a traceback from an import deep inside it."""
    from shorty.obs.tracesettings import propagator_problems, sdk_problems

    problems = sdk_problems(os.environ, otlp=False) + propagator_problems(os.environ)
    if problems:
        raise BadSettings(SettingsError(problems))


def start_tracing(service: str) -> None:
    """OpenTelemetry for this process from the OTEL_* variables (a bad one stops the
    command like a bad setting). What is left to export is sent at exit."""
    from shorty.obs.tracesettings import TracingSettingsError, read_settings

    try:
        # Before OpenTelemetry's SDK is imported: it reads some of them as it is.
        otel = read_settings(service, os.environ)
        from shorty.obs.tracing import start

        start(service, otel)
    except TracingSettingsError as exc:
        raise BadSettings(SettingsError(exc.problems)) from None


def data_dir_option(func: F) -> F:
    """``--data-dir``: where the embedded servers live when no URL is set."""
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=".shorty-data",
        envvar="SHORTY_DATA_DIR",
        show_default=True,
        help="Where the embedded PostgreSQL and Redis keep their data "
        "(used when SHORTY_DATABASE_URL / SHORTY_REDIS_URL are not set).",
    )(func)
