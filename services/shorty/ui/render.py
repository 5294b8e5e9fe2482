"""Pages: templates rendered with what every page shows (who is signed in, the
forms' CSRF token), and the answers every page may give (a redirect to the login,
an error page)."""

from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from shorty.ui import session
from shorty.ui.client import Answer

# Text of the notices a redirect asks for with ?done= (never text from the URL).
NOTICES = {
    "created": "Link created.",
    "saved": "Changes saved.",
    "deleted": "Link deleted.",
    "disabled": "Link disabled: it answers 404 until you enable it.",
    "enabled": "Link enabled.",
    "password": "Password changed. Your other sessions have ended.",
    "signed-up": "Welcome! Your account is ready.",
    "logged-out": "You are logged out.",
    "registered": "If this address was free, its account exists now: log in with it.",
    "revoked": "Key revoked: it works no more, nor do the keys it made.",
    "saved-user": "User saved.",
    "blocked": "Link blocked: it answers 410 (451 for a legal reason) until an admin lifts it.",
    "unblocked": "Block lifted.",
    "replayed": "Letters written back to their streams.",
    "purged": "Letters deleted.",
    "chaos-started": "Experiment started: watch the live figures below.",
    "chaos-stopped": "Experiment stopped.",
}


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("shorty.ui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static"] = static_url
    return env


@functools.cache
def _static_version(name: str) -> str:
    data = resources.files("shorty.ui").joinpath("static", name).read_bytes()
    return hashlib.sha256(data).hexdigest()[:12]


def static_url(name: str) -> str:
    """The URL of a static file, with its content's hash: cached for good, and a new
    version is a new URL."""
    return f"/ui/static/{name}?v={_static_version(name)}"


async def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    section: str = "",
) -> Response:
    viewer = await session.viewer(request)
    done = request.query_params.get("done", "")
    values = {
        "viewer": viewer,
        "csrf": session.csrf_token(request),
        "section": section,
        "notice": NOTICES.get(done, ""),
        "request_path": request.url.path,
        **(context or {}),
    }
    html = _environment().get_template(template).render(values)
    response = HTMLResponse(html, status_code=status)
    session.keep_anonymous(request, response)
    return response


async def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return await page(request, "error.html", {"title": title, "detail": detail}, status=status)


def to_login(request: Request) -> Response:
    """Off to the login page, back here afterwards (a stale session cookie cleared)."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/ui/login?next={quote(back, safe='')}", status_code=303)
    session.end(request, response)
    return response


async def signed_in(request: Request) -> session.Viewer | Response:
    """The person signed in, or the redirect to the login page a page answers with."""
    signed = await session.viewer(request)
    return signed if signed is not None else to_login(request)


def see(path: str, done: str = "") -> Response:
    """Post/redirect/get: on to ``path``, showing the notice ``done`` names."""
    return RedirectResponse(path + (f"?done={done}" if done else ""), status_code=303)


async def refused(request: Request, answer: Answer) -> Response:
    """The page for an API answer no form field explains: signed out, not found,
    busy or down."""
    if answer.status == 401:
        return to_login(request)
    problem = answer.problem
    title = str(problem.get("title") or "Something went wrong")
    detail = str(problem.get("detail") or f"The request failed ({answer.status}).")
    response = await error_page(request, answer.status, title, detail)
    if "retry-after" in answer.headers:
        response.headers["Retry-After"] = answer.headers["retry-after"]
    return response


def safe_next(value: str) -> str:
    """Where a login may send the browser on to: a page of this app only."""
    if value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/links"
