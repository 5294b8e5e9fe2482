"""``shorty chaos start|list|stop``: fault-injection experiments, through the API.

Unlike the other commands, these talk to a running API (``--api-url``) with an
admin's API key (``--api-key`` or SHORTY_API_KEY), not to the database: an
experiment is checked, recorded and audited where every other admin action is, and
the API's answer (its problem details) is what is printed when it refuses.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from shorty.core.chaos import DEPENDENCIES, KINDS, MAX_LATENCY_MS, MAX_SECONDS, MIN_SECONDS

F = TypeVar("F", bound=Callable[..., Any])
CHAOS = "/api/v1/admin/chaos"


class ApiRefused(click.ClickException):
    """The API could not be reached or refused the call: one readable message, exit 1."""


def api_options(func: F) -> F:
    """``--api-url``, ``--api-key`` and ``--timeout``, which every chaos command takes."""
    func = click.option(
        "--timeout",
        type=click.FloatRange(0.1, 300),
        default=10.0,
        show_default=True,
        help="Seconds to wait for the API's answer.",
    )(func)
    func = click.option(
        "--api-key",
        envvar="SHORTY_API_KEY",
        required=True,
        help="An API key with the 'admin' scope (or SHORTY_API_KEY).",
    )(func)
    return click.option(
        "--api-url",
        envvar="SHORTY_API_URL",
        default="http://localhost:8000",
        show_default=True,
        help="Base URL of the Shorty API (or SHORTY_API_URL).",
    )(func)


@click.group()
def chaos() -> None:
    """Fault-injection experiments: make PostgreSQL or Redis slow, flaky or
    unreachable for every service process, for a bounded time.

    The services must run with SHORTY_CHAOS_ENABLED=true (off by default: the API
    then answers that it is off). Each experiment ends by itself after its
    --seconds, whether or not anyone stops it; one at a time per dependency.
    Every process applies it within about a second and logs a WARNING when it
    starts and ends; the metrics shorty_chaos_active and
    shorty_chaos_injected_total show it. See docs/resilience.md, "Fault injection".
    """


@chaos.command("start")
@click.option(
    "--dependency", required=True, type=click.Choice(DEPENDENCIES), help="What misbehaves."
)
@click.option(
    "--kind",
    required=True,
    type=click.Choice(KINDS),
    help="latency: each call waits --latency-ms more; error: a share --rate of the calls"
    " fails as if the dependency were unreachable; outage: every call fails so.",
)
@click.option(
    "--seconds",
    required=True,
    type=click.IntRange(MIN_SECONDS, MAX_SECONDS),
    help="How long it lasts; it ends by itself then.",
)
@click.option(
    "--latency-ms",
    type=click.IntRange(1, MAX_LATENCY_MS),
    default=None,
    help="With --kind latency: the delay added to each call.",
)
@click.option(
    "--rate",
    type=click.FloatRange(0, 1),
    default=None,
    help="With --kind error: the share of calls that fail (0 to 1).",
)
@api_options
def chaos_start(
    dependency: str,
    kind: str,
    seconds: int,
    latency_ms: int | None,
    rate: float | None,
    api_url: str,
    api_key: str,
    timeout: float,
) -> None:
    """Start an experiment and print its id.

    For example: shorty chaos start --dependency redis --kind outage --seconds 30"""
    body: dict[str, Any] = {"dependency": dependency, "kind": kind, "seconds": seconds}
    if latency_ms is not None:
        body["latency_ms"] = latency_ms
    if rate is not None:
        body["rate"] = rate
    started = call(api_url, api_key, "POST", CHAOS, body, timeout)
    click.echo(
        f"Started experiment {started['id']}: {_what(started)} for {seconds} s, until"
        f" {_when(started['expires_at'])}. Stop it early: shorty chaos stop {started['id']}"
    )


@chaos.command("list")
@click.option(
    "--limit", type=click.IntRange(1, 500), default=20, show_default=True, help="The latest N."
)
@api_options
def chaos_list(limit: int, api_url: str, api_key: str, timeout: float) -> None:
    """List experiments, newest first: those in force (STATUS active) and past ones."""
    items = call(api_url, api_key, "GET", f"{CHAOS}?limit={limit}", None, timeout)["items"]
    rows = [("ID", "DEPENDENCY", "KIND", "PARAMS", "STARTED", "ENDS", "STATUS")]
    for item in items:
        status = "active" if item["active"] else "stopped" if item["stopped_at"] else "expired"
        ends = item["stopped_at"] or item["expires_at"]
        rows.append(
            (
                str(item["id"]),
                item["dependency"],
                item["kind"],
                _params(item) or "-",
                _when(item["started_at"]),
                _when(ends),
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@chaos.command("stop")
@click.argument("experiment_id", type=click.IntRange(1))
@api_options
def chaos_stop(experiment_id: int, api_url: str, api_key: str, timeout: float) -> None:
    """End experiment EXPERIMENT_ID now (every process stops applying it within about a
    second). One that has already ended is left as it is."""
    stopped = call(api_url, api_key, "POST", f"{CHAOS}/{experiment_id}/stop", None, timeout)
    ended = stopped["stopped_at"] or stopped["expires_at"]
    click.echo(f"Experiment {experiment_id} ({_what(stopped)}) ended at {_when(ended)}.")


def call(
    api_url: str, api_key: str, method: str, path: str, body: Any, timeout: float
) -> dict[str, Any]:
    """The API's JSON answer, or ``ApiRefused`` saying why there is none."""
    base = api_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ApiRefused(f"--api-url must start with http:// or https:// (got {api_url!r}).")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310  # the scheme is checked above
        base + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "shorty-cli",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            parsed: dict[str, Any] = json.loads(answer.read())
            return parsed
    except urllib.error.HTTPError as refused:
        raise ApiRefused(_refusal(refused.code, refused.read())) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ApiRefused(f"cannot reach the API at {base}: {reason}") from None
    except ValueError:
        raise ApiRefused(f"the API at {base} did not answer JSON; is it Shorty's API?") from None


def _refusal(status: int, raw: bytes) -> str:
    try:
        problem = json.loads(raw)
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
    detail = problem.get("detail") or problem.get("title") or raw.decode(errors="replace")[:200]
    if kind == "chaos-disabled":
        return (
            "fault injection is off on this server: run the services with"
            " SHORTY_CHAOS_ENABLED=true to allow experiments."
        )
    if status == 401:
        return f"the API key was refused ({detail}); pass an admin's key with --api-key."
    if status == 403:
        return f"not allowed: {detail} Fault injection needs a key with the 'admin' scope."
    lines = [f"the API refused ({status} {kind or 'error'}): {detail}"]
    lines += [f"  {e.get('field')}: {e.get('message')}" for e in problem.get("errors", [])]
    return "\n".join(lines)


def _what(item: dict[str, Any]) -> str:
    params = _params(item)
    return f"{item['dependency']} {item['kind']}" + (f" ({params})" if params else "")


def _params(item: dict[str, Any]) -> str:
    if item.get("latency_ms") is not None:
        return f"latency_ms={item['latency_ms']}"
    if item.get("rate") is not None:
        return f"rate={item['rate']:g}"
    return ""


def _when(timestamp: str) -> str:
    return datetime.fromisoformat(timestamp).strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()
