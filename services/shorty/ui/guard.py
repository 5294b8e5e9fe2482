"""Every page's doorman, in one place: who is signed in, and for every form that it
is read within bounds and carries its CSRF token — before the handler runs, so no
handler can forget either. The routes (``app.py``) say which guard each page has;
what a person may do is still the API's to decide (the admin pages' check only
spares a non-admin a page of refusals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from shorty.ui import session
from shorty.ui.forms import FORM_BYTES, Form, read_form
from shorty.ui.render import error_page, to_login
from shorty.ui.session import Viewer

FORBIDDEN = "This form has expired or came from another site. Reload the page and try again."

Endpoint = Callable[[Request], Awaitable[Response]]
Page = Callable[[Request, Viewer], Awaitable[Response]]
Posted = Callable[[Request, Viewer, Form], Awaitable[Response]]
AnonymousPosted = Callable[[Request, Form], Awaitable[Response]]


def signed(handler: Page, *, admin: bool = False) -> Endpoint:
    """A page for the person signed in (else off to the login page); ``admin``: for
    admins only (a 403 page for others)."""

    async def endpoint(request: Request) -> Response:
        viewer = await session.viewer(request)
        if viewer is None:
            return to_login(request)
        if admin and not viewer.is_admin:
            return await error_page(request, 403, "Admins only", "This page is for admins.")
        return await handler(request, viewer)

    return endpoint


def posted(
    handler: Posted, *, admin: bool = False, max_bytes: int = FORM_BYTES, files: int = 0
) -> Endpoint:
    """A form of the person signed in: read (at most ``max_bytes`` and ``files``
    files), its CSRF token checked (403, nothing done, when wrong), then handled."""

    async def with_form(request: Request, viewer: Viewer) -> Response:
        form = await read_form(request, max_bytes, files=files)
        if not session.csrf_ok(request, form.text("csrf")):
            return await error_page(request, 403, "Nothing done", FORBIDDEN)
        return await handler(request, viewer, form)

    endpoint = signed(with_form, admin=admin)
    endpoint.checks_csrf = True  # type: ignore[attr-defined]
    return endpoint


def anonymous(handler: AnonymousPosted) -> Endpoint:
    """A form of someone not (or no longer) signed in — log in, sign up, log out:
    read and its CSRF token checked, as ``posted``."""

    async def endpoint(request: Request) -> Response:
        form = await read_form(request)
        if not session.csrf_ok(request, form.text("csrf")):
            return await error_page(request, 403, "Nothing done", FORBIDDEN)
        return await handler(request, form)

    endpoint.checks_csrf = True  # type: ignore[attr-defined]
    return endpoint
