"""Your API keys: create one (its key shown once, with its scopes), list, revoke —
through the API's ``/api/v1/keys``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shorty.api.params import as_id
from shorty.ui import session
from shorty.ui.client import api_of
from shorty.ui.forms import Form, errors_of
from shorty.ui.render import error_page, page, refused, see
from shorty.ui.session import Viewer

SCOPES = [
    ("urls:read", "Read your links"),
    ("urls:write", "Create, change and delete your links"),
    ("stats:read", "Read your links' clicks"),
    ("keys:write", "Create and revoke keys"),
]
ADMIN_SCOPE = ("admin", "Everything an admin may do (admins only)")
DEFAULT = ("urls:read", "urls:write", "stats:read")


def _scopes(viewer: session.Viewer) -> list[tuple[str, str]]:
    return [*SCOPES, ADMIN_SCOPE] if viewer.is_admin else SCOPES


async def index(request: Request, signed: Viewer) -> Response:
    form = {"name": "", "scopes": DEFAULT, "expires_at": ""}
    return await _listing(request, signed, form, {}, "", None, 200)


async def _listing(
    request: Request,
    signed: session.Viewer,
    form: dict[str, Any],
    errors: dict[str, str],
    error: str,
    created: dict[str, Any] | None,
    status: int,
) -> Response:
    answer = await api_of(request).call(request, "GET", "/api/v1/keys", token=signed.token)
    if not answer.ok:
        return await refused(request, answer)
    now = datetime.now(UTC)
    keys = [{**key, "state": _state(key, now)} for key in answer.json()["items"]]
    keys.sort(key=lambda key: (key["state"] != "active", -key["id"]))
    context = {
        "keys": keys,
        "scopes": _scopes(signed),
        "form": form,
        "errors": errors,
        "error": error,
        "created": created,
    }
    return await page(request, "keys.html", context, status=status, section="keys")


def _state(key: dict[str, Any], now: datetime) -> str:
    if key["revoked_at"]:
        return "revoked"
    if key["expires_at"] and datetime.fromisoformat(key["expires_at"]) <= now:
        return "expired"
    return "active"


async def create(request: Request, signed: Viewer, form: Form) -> Response:
    typed = {
        "name": form.text("name"),
        "scopes": tuple(form.every("scopes")),
        "expires_at": form.text("expires_at"),
    }
    if not typed["scopes"]:
        errors = {"scopes": "Tick at least one scope."}
        return await _listing(request, signed, typed, errors, "", None, 422)
    body: dict[str, Any] = {"name": typed["name"], "scopes": list(typed["scopes"])}
    if typed["expires_at"]:
        body["expires_at"] = f"{typed['expires_at']}T00:00:00Z"
    answer = await api_of(request).call(
        request, "POST", "/api/v1/keys", token=signed.token, body=body
    )
    if answer.status == 401:
        return await refused(request, answer)
    if not answer.ok:
        errors, message = errors_of(answer.problem, ["name", "scopes", "expires_at"])
        return await _listing(request, signed, typed, errors, message, None, answer.status)
    # Shown on this answer only: never in a URL, never stored by a cache (no-store).
    blank = {"name": "", "scopes": DEFAULT, "expires_at": ""}
    return await _listing(request, signed, blank, {}, "", answer.json(), 201)


async def revoke(request: Request, signed: Viewer, form: Form) -> Response:
    key_id = as_id(request.path_params["key_id"])
    if key_id is None:
        return await error_page(request, 404, "Key not found", "No key of yours has this id.")
    answer = await api_of(request).call(
        request, "DELETE", f"/api/v1/keys/{key_id}", token=signed.token
    )
    if not answer.ok:
        return await refused(request, answer)
    return see("/ui/keys", "revoked")
