"""The admin pages: users (search, disable, role, rate limit, link quota), link
blocks, and the dead-letter stream (size, inspect, replay, purge) — through the
API's ``/api/v1/admin`` routes, which decide who may (the pages only hide what a
non-admin could not do anyway)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from shorty.api.params import as_id
from shorty.core.codes import is_well_formed
from shorty.ui import session
from shorty.ui.client import api_of
from shorty.ui.forms import Form, errors_of, number
from shorty.ui.render import error_page, page, refused, see
from shorty.ui.session import Viewer

USERS_PAGE = 50
LETTERS_PAGE = 50
REASONS = [
    ("abuse", "Abuse (410)"),
    ("malware", "Malware (410)"),
    ("phishing", "Phishing (410)"),
    ("spam", "Spam (410)"),
    ("legal", "Legal (451)"),
    ("other", "Other (410)"),
]
_USER_FIELDS = ("role", "disabled", "rate_limit", "max_links")


async def users(request: Request, signed: Viewer) -> Response:
    q = request.query_params.get("q", "").strip()
    after = as_id(request.query_params.get("after_id", "")) or 0
    params = {"q": q, "after_id": after, "limit": USERS_PAGE}
    answer = await api_of(request).call(
        request, "GET", "/api/v1/admin/users", token=signed.token, params=params
    )
    if not answer.ok:
        if answer.status == 422:
            _, message = errors_of(answer.problem, [])
            return await error_page(request, 422, "Not a search", message)
        return await refused(request, answer)
    found = answer.json()
    kept = {"q": q} if q else {}
    following = found["next_after_id"]
    context = {
        "users": found["items"],
        "q": q,
        "next_page": f"/ui/admin/users?{urlencode({**kept, 'after_id': following})}"
        if following
        else "",
        "first_page": "/ui/admin/users" + (f"?{urlencode(kept)}" if kept else "") if after else "",
    }
    return await page(request, "admin_users.html", context, section="admin")


async def _user(request: Request, signed: session.Viewer, user_id: int) -> dict[str, Any] | None:
    """The user ``user_id`` (the API lists users by id: the first after ``user_id - 1``)."""
    answer = await api_of(request).call(
        request,
        "GET",
        "/api/v1/admin/users",
        token=signed.token,
        params={"after_id": user_id - 1, "limit": 1},
    )
    items = answer.json()["items"] if answer.ok else []
    return items[0] if items and items[0]["id"] == user_id else None


async def user_page(request: Request, signed: Viewer) -> Response:
    user_id = as_id(request.path_params["user_id"])
    user = await _user(request, signed, user_id) if user_id else None
    if user is None:
        return await error_page(request, 404, "User not found", "No user has this id.")
    quota = user["max_links"]
    form = {
        **user,
        "rate_limit": user["rate_limit"] or "",
        "max_links": "" if quota is None else quota,
    }
    context = _user_context(user, form, signed)
    return await page(request, "admin_user.html", context, section="admin")


async def change_user(request: Request, signed: Viewer, form: Form) -> Response:
    user_id = as_id(request.path_params["user_id"])
    user = await _user(request, signed, user_id) if user_id else None
    if user is None:
        return await error_page(request, 404, "User not found", "No user has this id.")
    role, limit, quota = form.text("role"), form.text("rate_limit"), form.text("max_links")
    disabled = form.text("disabled") == "on"
    typed = {"role": role, "disabled": disabled, "rate_limit": limit, "max_links": quota}
    context = _user_context(user, {**user, **typed}, signed)
    body = {
        "role": role,
        "disabled": disabled,
        "rate_limit": limit or None,
        "max_links": number(quota),
    }
    answer = await api_of(request).call(
        request, "PATCH", f"/api/v1/admin/users/{user_id}", token=signed.token, body=body
    )
    if answer.ok:
        return see(f"/ui/admin/users/{user_id}", "saved-user")
    if answer.status in (401, 404) or answer.status >= 500:
        return await refused(request, answer)
    context["errors"], context["error"] = errors_of(answer.problem, _USER_FIELDS)
    return await page(request, "admin_user.html", context, status=answer.status, section="admin")


def _user_context(
    user: dict[str, Any], form: dict[str, Any], signed: session.Viewer
) -> dict[str, Any]:
    return {
        "user": user,
        "form": form,
        "errors": {},
        "error": "",
        "myself": user["id"] == signed.user_id,
    }


async def block(request: Request, signed: Viewer, form: Form) -> Response:
    """Block a link (``/block``) or lift its block (``/unblock``)."""
    code = request.path_params["code"]
    if not is_well_formed(code):
        return await error_page(request, 404, "Link not found", "No link has this code.")
    lifting = request.url.path.endswith("/unblock")
    path = f"/api/v1/admin/urls/{code}/block"
    api = api_of(request)
    if lifting:
        answer = await api.call(request, "DELETE", path, token=signed.token)
    else:
        body = {"reason": form.text("reason"), "note": form.text("note") or None}
        answer = await api.call(request, "PUT", path, token=signed.token, body=body)
    if not answer.ok:
        if answer.status == 422:
            _, message = errors_of(answer.problem, [])
            return await error_page(request, 422, "Not blocked", message)
        return await refused(request, answer)
    return see(f"/ui/links/{code}", "unblocked" if lifting else "blocked")


async def letters(request: Request, signed: Viewer) -> Response:
    after = request.query_params.get("after", "")
    params = {"after": after, "limit": LETTERS_PAGE}
    answer = await api_of(request).call(
        request, "GET", "/api/v1/admin/dlq", token=signed.token, params=params
    )
    if not answer.ok:
        if answer.status == 422:
            return see("/ui/admin/dlq")
        return await refused(request, answer)
    found = answer.json()
    context = {
        "size": found["size"],
        "letters": found["items"],
        "next_page": f"/ui/admin/dlq?after={found['next_after']}" if found["next_after"] else "",
        "first_page": "/ui/admin/dlq" if after else "",
    }
    return await page(request, "admin_dlq.html", context, section="admin")


async def letters_action(request: Request, signed: Viewer, form: Form) -> Response:
    """Replay or purge the letters chosen (``ids``), or all of them (``all``)."""
    action = request.url.path.rsplit("/", 1)[1]  # replay or purge
    chosen = form.every("ids")
    if form.text("all") == "yes":
        body: dict[str, Any] = {"all": True}
    elif chosen:
        body = {"ids": chosen}
    else:
        return await error_page(request, 422, "Nothing chosen", "Tick the letters first.")
    answer = await api_of(request).call(
        request, "POST", f"/api/v1/admin/dlq/{action}", token=signed.token, body=body
    )
    if not answer.ok:
        if answer.status == 422:
            _, message = errors_of(answer.problem, [])
            return await error_page(request, 422, "Nothing done", message)
        return await refused(request, answer)
    return see("/ui/admin/dlq", "replayed" if action == "replay" else "purged")


async def purge_all_page(request: Request, signed: Viewer) -> Response:
    return await page(request, "admin_purge.html", {}, section="admin")
