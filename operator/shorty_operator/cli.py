"""``shorty-operator``: run the ShortLink operator (kopf) against the cluster it finds.

It logs in as kopf does: in a pod with its service account, elsewhere with
``KUBECONFIG`` (or ``~/.kube/config``)."""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any, TypeVar, cast

import click
import kopf

from shorty.obs.buildinfo import describe_build
from shorty.obs.exposition import MetricsPortBusy, metrics_listener
from shorty.obs.logging import configure_logging
from shorty.obs.tracesettings import TracingSettingsError, read_settings
from shorty_operator.peering import PeeringState

KEY_ENV = "SHORTY_OPERATOR_API_KEY"
# A port none of Shorty's own uses (the API's 8000, the redirects' 8080, the metrics'
# 9100-9102, the operator's metrics' 9090), so the operator runs beside `shorty dev`.
LIVENESS = "http://0.0.0.0:8081/healthz"
F = TypeVar("F", bound=Callable[..., Any])


def seconds(name: str, default: float, text: str) -> Callable[[F], F]:
    """An option in seconds (at least 0.1), also read from SHORTY_OPERATOR_<NAME>."""
    env = "SHORTY_OPERATOR_" + name.removeprefix("--").replace("-", "_").upper()
    option: Callable[[F], F] = click.option(
        name, type=click.FloatRange(min=0.1), default=default, envvar=env, help=text
    )
    return option


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option(
    "--api-url",
    envvar="SHORTY_OPERATOR_API_URL",
    required=True,
    help="Shorty's API service, e.g. http://shorty-api.shorty.svc:8000 "
    "[env SHORTY_OPERATOR_API_URL]. The API key is read from the environment only: "
    f"{KEY_ENV} (scopes urls:read and urls:write; mount it from a Secret).",
)
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    envvar="SHORTY_OPERATOR_NAMESPACES",
    help="Watch only this namespace (repeat for more) [env SHORTY_OPERATOR_NAMESPACES, "
    "space-separated]. Exact names need no cluster-wide rights; a glob such as 'team-*' "
    "needs the right to list and watch namespaces. Without it: all namespaces.",
)
@seconds(
    "--interval", 60.0, "Seconds between checks of each link: drift put back, clicks refreshed."
)
@seconds("--conflict-retry", 30.0, "Seconds between tries of a ShortLink whose code is taken.")
@seconds(
    "--backoff", 5.0, "First retry after the API was unavailable; doubles each time, to 300 s."
)
@seconds(
    "--api-timeout",
    10.0,
    "Seconds one call to the API may take (connecting included); past it the ShortLink "
    "shows ApiUnavailable and is retried with --backoff.",
)
@click.option(
    "--api-concurrency",
    type=click.IntRange(min=1),
    default=10,
    envvar="SHORTY_OPERATOR_API_CONCURRENCY",
    help="Calls to the API in flight at once, at most: the bound on the operator's work "
    "(at a start, one call per ShortLink). More wait for one to end, within --api-timeout, "
    "then count as ApiUnavailable.",
)
@click.option(
    "--breaker-threshold",
    type=click.IntRange(min=1, max=1000),
    default=5,
    envvar="SHORTY_OPERATOR_BREAKER_THRESHOLD",
    help="Calls to the API failed in a row (unreachable, past --api-timeout, a 5xx; not a "
    "4xx, which is the API answering) that open the operator's circuit breaker: then no "
    "call is made for --breaker-cooldown, ShortLinks show ApiUnavailable at once and are "
    "retried no sooner than the cool-down ends.",
)
@click.option(
    "--breaker-cooldown",
    type=click.FloatRange(min=0, max=3600),
    default=10.0,
    envvar="SHORTY_OPERATOR_BREAKER_COOLDOWN",
    help="Seconds the circuit breaker stays open before one call probes the API (its "
    "success closes the breaker, its failure opens it again); 0: the breaker never opens. "
    "Its state is in /healthz ('api') and in shorty_breaker_state{dependency=\"api\"}.",
)
@click.option(
    "--liveness",
    default=LIVENESS,
    envvar="SHORTY_OPERATOR_LIVENESS",
    help="Where kopf answers liveness probes, an http:// URL ('' to turn off).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0, max=65535),
    default=9090,
    envvar="SHORTY_OPERATOR_METRICS_PORT",
    help="Port of the Prometheus /metrics endpoint (0 to turn off).",
)
@click.option(
    "--metrics-host",
    default="0.0.0.0",  # noqa: S104 - Prometheus scrapes the pod's address
    envvar="SHORTY_OPERATOR_METRICS_HOST",
    show_default=True,
    help="Interface of the /metrics endpoint (127.0.0.1: this machine only).",
)
@click.option(
    "--peering",
    envvar="SHORTY_OPERATOR_PEERING",
    help="Name of the ClusterKopfPeering to keep a heartbeat in, so that two operators "
    "never act at once (both pause while they see each other). It waits until kopf's "
    "peering CRD (manifests/crds/clusterkopfpeerings.kopf.dev.yaml) exists. Without it: "
    "kopf's 'default' peering if that CRD exists, else none. While the peering holds the "
    "operator (waiting, paused, the object missing), /healthz shows it under 'peering' and "
    "shorty_operator_paused is 1.",
)
@click.option(
    "--standalone",
    is_flag=True,
    envvar="SHORTY_OPERATOR_STANDALONE",
    help="No peering: for one operator that is sure to be alone (and clusters without "
    "the peering CRDs).",
)
@click.option(
    "--identity",
    envvar="SHORTY_OPERATOR_IDENTITY",
    help="This operator's name in the peering object. Keep it across restarts of one pod "
    "(the Deployment sets the pod's name): a restarted operator then takes the heartbeat "
    "its killed self left for its own and acts at once, instead of pausing until that "
    "heartbeat expires (60 s). Without it: kopf's POD_ID, else a new name per run.",
)
@click.option(
    "--log-level",
    default="INFO",
    envvar="SHORTY_LOG_LEVEL",
    help="DEBUG, INFO, WARNING or ERROR (ECS JSON on stdout).",
)
def main(
    api_url: str,
    namespaces: tuple[str, ...],
    interval: float,
    conflict_retry: float,
    backoff: float,
    api_timeout: float,
    api_concurrency: int,
    breaker_threshold: int,
    breaker_cooldown: float,
    liveness: str,
    metrics_port: int,
    metrics_host: str,
    peering: str | None,
    standalone: bool,
    identity: str | None,
    log_level: str,
) -> None:
    """Make Shorty's links match the ShortLink objects of the cluster."""
    api_key = os.environ.get(KEY_ENV, "")
    if not api_key:
        raise click.UsageError(f"{KEY_ENV} is not set: the operator needs an API key.")
    if not api_url.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--api-url")
    if liveness:
        check_liveness(liveness)
    configure_logging(log_level.upper(), "operator")
    try:
        # Before OpenTelemetry's SDK is imported (the handlers' spans): it reads some
        # of the variables as it is, and fails with a traceback.
        otel = read_settings("operator", os.environ)
        from shorty.obs import tracing
        from shorty_operator.handlers import Config, build_registry

        tracing.start("operator", otel)  # what is left to export is sent at exit
    except TracingSettingsError as exc:
        raise click.UsageError(f"invalid settings: {'; '.join(exc.problems)}") from None
    watched = [name for entry in namespaces for name in entry.split()]
    config = Config(
        api_url=api_url,
        api_key=api_key,
        interval=interval,
        conflict_retry=conflict_retry,
        backoff=backoff,
        timeout=api_timeout,
        concurrency=api_concurrency,
        breaker_threshold=breaker_threshold,
        breaker_cooldown=breaker_cooldown,
        # Globs ('team-*') and "all namespaces" need the cluster's namespaces listed and watched.
        scan_cluster=not watched or any(c in name for name in watched for c in "*?[!"),
    )
    peering_state = PeeringState(None if standalone else peering, standalone=standalone)
    peering_state.install()
    describe_build("operator")
    with ExitStack() as stack:
        try:
            stack.enter_context(
                metrics_listener(
                    metrics_host, metrics_port, hint="choose another --metrics-port (0: none)"
                )
            )
        except MetricsPortBusy as exc:
            raise click.ClickException(str(exc)) from None
        kopf.run(
            registry=build_registry(config),
            memo=kopf.Memo(config=config, peering=peering_state),
            clusterwide=not namespaces,
            namespaces=watched,
            standalone=standalone,
            peering_name=None if standalone else peering,
            liveness_endpoint=liveness or None,
            # kopf's Identity is a NewType of str it does not export.
            identity=cast(Any, identity or None),
        )


def check_liveness(endpoint: str) -> None:
    """Refuse a liveness endpoint kopf could not serve, in one line: kopf would bind it
    only once running, and fail there with a traceback."""
    parts = urllib.parse.urlsplit(endpoint)
    try:
        port = parts.port or 80  # as kopf reads it
    except ValueError:
        port = -1
    if parts.scheme != "http" or not 0 <= port <= 65535:
        raise click.BadParameter(
            "must be an http:// URL, e.g. " + LIVENESS, param_hint="--liveness"
        )
    host = parts.hostname or "localhost"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            probe.bind((host, port))
    except OSError as exc:
        raise click.ClickException(
            f"cannot answer liveness probes on {host}:{port}: {exc.strerror or exc}; "
            "choose another --liveness ('' to turn off)"
        ) from None
