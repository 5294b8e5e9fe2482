"""The chaos panel (admins, with SHORTY_CHAOS_ENABLED=true): start a latency, error
or outage injection on PostgreSQL or Redis for N seconds, watch the live figures
react beside it, stop it, and see the past experiments — through the API's
``/api/v1/admin/chaos``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shorty.api.params import as_id
from shorty.ui import session
from shorty.ui.client import api_of
from shorty.ui.forms import Form, errors_of, number
from shorty.ui.render import error_page, page, refused, see
from shorty.ui.session import Viewer

DEPENDENCIES = [("redis", "Redis"), ("postgres", "PostgreSQL")]
KINDS = [
    ("outage", "Outage: every call fails"),
    ("error", "Errors: a share of calls fails"),
    ("latency", "Latency: every call waits longer"),
]
_FIELDS = ("dependency", "kind", "seconds", "latency_ms", "rate")


async def panel(request: Request, signed: Viewer) -> Response:
    form = {
        "dependency": "redis",
        "kind": "outage",
        "seconds": "30",
        "latency_ms": "200",
        "rate": "0.5",
    }
    return await _panel(request, signed, form, {}, "", 200)


async def _panel(
    request: Request,
    signed: session.Viewer,
    form: dict[str, Any],
    errors: dict[str, str],
    error: str,
    status: int,
) -> Response:
    api = api_of(request)
    history = await api.call(
        request, "GET", "/api/v1/admin/chaos", token=signed.token, params={"limit": 20}
    )
    if history.status == 403:
        return await error_page(request, 403, "Admins only", "This page is for admins.")
    if history.status == 404:
        detail = (
            "Fault injection is off on this Shorty. Set SHORTY_CHAOS_ENABLED=true on every"
            " service to run experiments (never in production unless you mean it)."
        )
        return await error_page(request, 404, "Chaos panel off", detail)
    if not history.ok:
        return await refused(request, history)
    live = await api.call(request, "GET", "/api/v1/admin/live", token=signed.token)
    snapshot = live.json() if live.ok else {"at": 0, "services": []}
    context = {
        "experiments": history.json()["items"],
        "dependencies": DEPENDENCIES,
        "kinds": KINDS,
        "form": form,
        "errors": errors,
        "error": error,
        "snapshot": snapshot,
        "targets": bool(snapshot["services"]),
    }
    return await page(request, "chaos.html", context, status=status, section="admin")


async def start(request: Request, signed: Viewer, form: Form) -> Response:
    typed = {name: form.text(name) for name in _FIELDS}
    body: dict[str, Any] = {
        "dependency": typed["dependency"],
        "kind": typed["kind"],
        "seconds": number(typed["seconds"]),
    }
    if typed["kind"] == "latency":
        body["latency_ms"] = number(typed["latency_ms"])
    elif typed["kind"] == "error":
        body["rate"] = _share(typed["rate"])
    answer = await api_of(request).call(
        request, "POST", "/api/v1/admin/chaos", token=signed.token, body=body
    )
    if answer.ok:
        return see("/ui/admin/chaos", "chaos-started")
    if answer.status in (401, 403, 404) or answer.status >= 500:
        return await refused(request, answer)
    errors, message = errors_of(answer.problem, _FIELDS)
    return await _panel(request, signed, typed, errors, message, answer.status)


def _share(value: str) -> float | str | None:
    """A share typed as 0.25 (or 25 %): a number, or the text as typed for the API to
    refuse."""
    text = value.replace("%", "").strip()
    try:
        share = float(text)
    except ValueError:
        return value or None
    return share / 100 if "%" in value else share


async def stop(request: Request, signed: Viewer, form: Form) -> Response:
    experiment = as_id(request.path_params["experiment_id"])
    if experiment is None:
        return await error_page(request, 404, "No such experiment", "No experiment has this id.")
    answer = await api_of(request).call(
        request, "POST", f"/api/v1/admin/chaos/{experiment}/stop", token=signed.token
    )
    if not answer.ok:
        return await refused(request, answer)
    return see("/ui/admin/chaos", "chaos-stopped")
