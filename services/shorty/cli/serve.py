"""``shorty serve api|redirect|worker``: one service in the foreground, its metrics on
a listener of their own."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import get_args

import click
from starlette.types import ASGIApp

from shorty.cli.config import F, server_settings, start_tracing
from shorty.cli.servers import domain_errors, with_pool
from shorty.settings import METRICS_PORTS, ServerName, Settings
from shorty.web.drain import Drain
from shorty.web.liveness import LoopWatchdog


@click.group()
def serve() -> None:
    """Run one service in the foreground (needs SHORTY_DATABASE_URL and SHORTY_REDIS_URL)."""


def provision(config: Settings) -> None:
    """SHORTY_INITIAL_API_KEY, if set, becomes an admin key, and SHORTY_OPERATOR_API_KEY,
    if set, the operator's key (store/bootstrap.py)."""
    from shorty.store.bootstrap import provision_keys

    domain_errors(with_pool)(config, None, lambda pool: provision_keys(pool, config))


def metrics_options(service: str, host_default: str | None = None) -> Callable[[F], F]:
    """``--metrics-host`` (by default the service's ``--host``) and ``--metrics-port``
    of a ``shorty serve`` command."""

    def add(func: F) -> F:
        port = click.option(
            "--metrics-port",
            type=click.IntRange(0, 65_535),
            default=None,
            help="Port of the Prometheus metrics, never the public port (0: none). "
            f"This option, else SHORTY_METRICS_PORT, else {METRICS_PORTS[service]}.",
        )
        host = click.option(
            "--metrics-host",
            default=host_default,
            show_default=True if host_default else "same as --host",
            help="Interface of the metrics listener.",
        )
        return host(port(func))

    return add


@contextmanager
def serving_metrics(
    config: Settings,
    service: str,
    host: str,
    option: int | None,
    public_port: int = 0,
    *,
    watchdog: LoopWatchdog | None = None,
) -> Iterator[None]:
    """The service's metrics on a listener of their own while the block runs, and
    ``/livez`` there from ``watchdog`` (answered off the event loop).

    Opened before the service starts, so that a busy port is one line (raised in the
    lifespan, uvicorn would log a traceback) and the public port never opens."""
    from shorty.obs.buildinfo import describe_build
    from shorty.obs.exposition import MetricsPortBusy, metrics_listener

    describe_build(service)
    port = config.metrics_port_of(service) if option is None else option
    if port and port == public_port:
        raise click.ClickException(
            f"cannot serve metrics on the public port {port}; choose another port with"
            " --metrics-port or SHORTY_METRICS_PORT (0: none)"
        )
    with ExitStack() as stack:
        try:
            liveness = watchdog.answer if watchdog is not None else None
            stack.enter_context(metrics_listener(host, port, liveness=liveness))
        except MetricsPortBusy as exc:
            raise click.ClickException(str(exc)) from None
        yield


def server_option(func: F) -> F:
    """``--server`` of ``shorty serve api|redirect``."""
    return click.option(
        "--server",
        type=click.Choice(get_args(ServerName)),
        default=None,
        help="HTTP server: uvicorn, or granian (Rust; faster, docs/performance.md)."
        " This option, else SHORTY_SERVER, else uvicorn.",
    )(func)


def _serve_http(
    service: str,
    host: str,
    port: int,
    metrics_host: str | None,
    metrics_port: int | None,
    server: ServerName | None,
) -> None:
    from shorty.obs.logging import configure_logging
    from shorty.web.server import serve

    config = server_settings()
    server = server or config.server
    configure_logging(config.log_level, service)
    start_tracing(service)  # before the app is made: it takes the process's tracing
    watchdog = LoopWatchdog(config.liveness_max_lag)
    drain = Drain(config.drain_delay)
    app: ASGIApp
    if service == "api":
        from shorty.api.app import create_app as create_api

        if config.initial_api_key is not None or config.operator_api_key is not None:
            # Before the server starts, so a refusal stops it with one clear line (in
            # the lifespan, uvicorn would print a traceback); the app then skips it.
            provision(config)

        app = create_api(config, provision=False, watchdog=watchdog, drain=drain)
    else:
        from shorty.redirect.app import create_app as create_redirect

        app = create_redirect(config, watchdog=watchdog, drain=drain)
        # The hot path allocates a few short-lived objects per request. Everything
        # loaded so far is moved out of the collector's sight, and young collections
        # run less often: both measured to cut p99 (docs/performance.md).
        gc.freeze()
        gc.set_threshold(20_000, 50, 50)
    metrics_at = metrics_host or host
    with serving_metrics(config, service, metrics_at, metrics_port, port, watchdog=watchdog):
        serve(
            app,
            server=server,
            drain=drain,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            # X-Forwarded-For is read by Shorty itself, from SHORTY_TRUSTED_PROXIES only.
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )


@serve.command("api")
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")  # noqa: S104
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@metrics_options("api")
@server_option
def serve_api(
    host: str,
    port: int,
    metrics_host: str | None,
    metrics_port: int | None,
    server: ServerName | None,
) -> None:
    """The JSON API (/api/v1/...), with /livez and /readyz; its metrics on their own port.

    On SIGTERM, /readyz answers 503 while requests are still served for
    SHORTY_DRAIN_DELAY seconds (5), then it stops accepting, finishes what is open and
    exits 0. SIGINT (Ctrl-C) or a second SIGTERM skips the delay.
    """
    _serve_http("api", host, port, metrics_host, metrics_port, server)


@serve.command("redirect")
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")  # noqa: S104
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@metrics_options("redirect")
@server_option
def serve_redirect(
    host: str,
    port: int,
    metrics_host: str | None,
    metrics_port: int | None,
    server: ServerName | None,
) -> None:
    """The public redirects (GET|HEAD /<code>), with /livez and /readyz; its metrics on
    their own port.

    On SIGTERM, /readyz answers 503 while redirects are still served for
    SHORTY_DRAIN_DELAY seconds (5), then it stops accepting, finishes what is open,
    writes its buffered clicks and exits 0. SIGINT (Ctrl-C) or a second SIGTERM skips
    the delay.
    """
    _serve_http("redirect", host, port, metrics_host, metrics_port, server)


@serve.command("worker")
# Every interface, like the other services' --host: Prometheus scrapes the pod's address.
@metrics_options("worker", "0.0.0.0")  # noqa: S104
def serve_worker(metrics_host: str, metrics_port: int | None) -> None:
    """Background jobs: outbox relay, click ingestion, rollups, cache updates, retention.

    Serves its metrics (any path) and its liveness probe (/livez: is its event loop
    running?) on --metrics-host:--metrics-port; like the other services' --host, on every
    interface by default. Stops on SIGTERM/SIGINT.
    """
    from shorty.obs.logging import configure_logging

    config = server_settings()
    configure_logging(config.log_level, "worker")
    start_tracing("worker")  # before the worker's modules: they import OpenTelemetry's SDK
    from shorty.worker.main import run_worker

    watchdog = LoopWatchdog(config.liveness_max_lag)

    async def watched() -> None:
        async with watchdog.watching():
            await run_worker(config)

    with serving_metrics(config, "worker", metrics_host, metrics_port, watchdog=watchdog):
        asyncio.run(watched())
