"""Who is signed in, by the session cookie, and the CSRF token of every form.

The session cookie holds the refresh token of a login (``/auth/login``): opaque,
stored as SHA-256 only, never spent by the pages, and ended by logging out, by a
password change elsewhere, by a spent-token reuse, or by an admin disabling the
account. Each page mints a short access token for its API calls from it.

Every form carries a CSRF token: a MAC, under the access tokens' secret, of the
session cookie (or, before a login, of a random cookie of its own), checked on
every POST together with ``Sec-Fetch-Site``. The cookies are HttpOnly and
SameSite=Lax, and Secure (with the ``__Host-`` prefix) when the browser came over
TLS."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from shorty.bootstrap import api_deps_of
from shorty.web.clientip import is_https

SESSION = "shorty_session"
ANONYMOUS = "shorty_csrf"
_CSRF = "ui-csrf"
_UNKNOWN = object()


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person signed in: their id, address and role, and an access token for
    this request's API calls."""

    user_id: int
    email: str
    role: str
    token: str
    refresh_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _name(request: HTTPConnection, base: str) -> str:
    """The cookie's name: ``__Host-`` prefixed (bound to this host, Secure, path /)
    over TLS."""
    return f"__Host-{base}" if _secure(request) else base


def _secure(request: HTTPConnection) -> bool:
    return is_https(request.scope, api_deps_of(request).settings.trusted_proxies)


async def viewer(request: HTTPConnection) -> Viewer | None:
    """The person the session cookie names, if the session is live and the account
    enabled; else None (the cookie is then cleared by the page that answers). Looked
    up once per request."""
    known: Viewer | object | None = getattr(request.state, "ui_viewer", _UNKNOWN)
    if known is not _UNKNOWN:
        return known  # type: ignore[return-value]
    found = await lookup(request)
    request.state.ui_viewer = found
    return found


async def lookup(request: HTTPConnection) -> Viewer | None:
    """``viewer`` afresh: a long-lived connection (the live view's WebSocket) asks
    again and again, and ends when the session does."""
    token = request.cookies.get(_name(request, SESSION), "")
    signed = None
    if token and len(token) <= 100:
        deps = api_deps_of(request)
        signed = await deps.sessions.peek(token)
    found = None
    if signed is not None:
        session = signed.session
        access = api_deps_of(request).tokens.issue(session.user_id, session.family)
        found = Viewer(session.user_id, signed.email, signed.role, access, token)
    return found


def start(request: Request, response: Response, refresh_token: str) -> None:
    """Sign the browser in with the session of ``refresh_token``."""
    max_age = api_deps_of(request).settings.refresh_token_ttl
    _set(request, response, SESSION, refresh_token, max_age)
    response.delete_cookie(_name(request, ANONYMOUS), path="/", secure=_secure(request))


def end(request: Request, response: Response) -> None:
    response.delete_cookie(
        _name(request, SESSION), path="/", secure=_secure(request), httponly=True
    )


def _set(request: Request, response: Response, base: str, value: str, max_age: int) -> None:
    response.set_cookie(
        _name(request, base),
        value,
        max_age=max_age,
        path="/",
        secure=_secure(request),
        httponly=True,
        samesite="lax",
    )


def csrf_token(request: Request) -> str:
    """The token the forms of this page carry. Without a cookie to bind it to, a
    random one is made, for ``keep_anonymous`` to set."""
    bound = _bound(request)
    if not bound:
        bound = getattr(request.state, "ui_anonymous", None) or secrets.token_urlsafe(32)
        request.state.ui_anonymous = bound
    return api_deps_of(request).tokens.mac(_CSRF, bound)


def keep_anonymous(request: Request, response: Response) -> None:
    """Set the random cookie ``csrf_token`` bound this page's forms to, if it made one."""
    made = getattr(request.state, "ui_anonymous", None)
    if made:
        _set(request, response, ANONYMOUS, made, 12 * 3600)


def _bound(request: Request) -> str | None:
    """The cookie a CSRF token is a MAC of: the session's, else the random one."""
    return request.cookies.get(_name(request, SESSION)) or request.cookies.get(
        _name(request, ANONYMOUS)
    )


def csrf_ok(request: Request, sent: str) -> bool:
    """Whether a POST may be acted on: not sent from another site, and carrying the
    token of the cookie it came with."""
    if request.headers.get("sec-fetch-site", "same-origin") == "cross-site":
        return False
    bound = _bound(request)
    if not bound or not sent:
        return False
    expected = api_deps_of(request).tokens.mac(_CSRF, bound)
    return hmac.compare_digest(expected.encode(), sent.encode("utf-8", "replace"))
