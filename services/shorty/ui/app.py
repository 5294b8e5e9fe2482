"""The web app's routes, served by the API service under ``/ui`` (docs/ui.md).

Every page is rendered on the server; the one script only adds copy buttons.
Each answer carries a Content-Security-Policy without ``unsafe-inline``: styles
and the script come from ``/ui/static`` only, and nothing may frame the pages."""

from __future__ import annotations

import logging
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shorty.resilience.deadline import DeadlineExceeded
from shorty.store.errors import UNAVAILABLE
from shorty.ui import account, admin, chaos, keys, links, live, stats
from shorty.ui.client import Api
from shorty.ui.forms import UPLOAD_BYTES
from shorty.ui.guard import anonymous, posted, signed
from shorty.ui.render import error_page
from shorty.web.problems import Problem

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """The headers every answer of the web app carries; a page (not a static file)
    is never stored by a cache, since it shows someone's links. A page that fails
    past every handler is answered with the 500 page, and logged, here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(("/ui/static/", "/static/"))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(n, v) for n, v in message.get("headers", []) if n not in _REPLACED]
                headers += _HEADERS
                cache = b"public, max-age=31536000, immutable" if static else b"no-store"
                headers.append((b"cache-control", cache))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            log.exception("web app page %s failed", scope["path"])
            if started:
                raise
            page = await _bare_page(
                500, "Something went wrong", "The page failed; the error is logged. Retry later."
            )
            await page(scope, receive, send_with_headers)


_REPLACED = frozenset({name for name, _ in _HEADERS} | {b"cache-control"})


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:  # a form Starlette cannot read (too many fields, no boundary)
        return await error_page(request, 400, "Bad request", exc.detail or "The form is not valid.")
    if exc.status_code == 405:
        return await error_page(
            request, 405, "Not here", "This page does not take that kind of request."
        )
    return await error_page(request, 404, "Page not found", "There is no page at this address.")


async def too_large(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return await error_page(request, exc.status, exc.title, exc.detail or "")


async def unavailable(request: Request, exc: Exception) -> Response:
    log.warning("web app page %s failed: %s", request.url.path, type(exc).__name__)
    response = await _bare_page(
        503, "Shorty is busy", "The database cannot be reached; retry in a few seconds."
    )
    response.headers["Retry-After"] = "5"
    return response


async def _bare_page(status: int, title: str, detail: str) -> Response:
    """An error page that needs nothing that may have failed (no session lookup)."""
    from shorty.ui.render import _environment

    html = (
        _environment()
        .get_template("error.html")
        .render(viewer=None, csrf="", section="", notice="", title=title, detail=detail)
    )
    return Response(html, status_code=status, media_type="text/html")


def create_ui(api: ASGIApp) -> Starlette:
    """The web app, calling ``api`` (the API's routes) in-process for everything."""
    static = StaticFiles(directory=str(resources.files("shorty.ui").joinpath("static")))
    routes = [
        Route("/", account.home, methods=["GET"]),
        Route("/login", account.login_page, methods=["GET"]),
        Route("/login", anonymous(account.login), methods=["POST"]),
        Route("/signup", account.signup_page, methods=["GET"]),
        Route("/signup", anonymous(account.signup), methods=["POST"]),
        Route("/logout", anonymous(account.logout), methods=["POST"]),
        Route("/account", signed(account.account_page), methods=["GET"]),
        Route("/account/password", posted(account.change_password), methods=["POST"]),
        Route("/links", signed(links.index), methods=["GET"]),
        Route("/links.csv", signed(links.export), methods=["GET"]),
        Route("/new", signed(links.new_page), methods=["GET"]),
        Route("/new", posted(links.create), methods=["POST"]),
        Route("/import", signed(links.import_page), methods=["GET"]),
        Route(
            "/import", posted(links.import_csv, max_bytes=UPLOAD_BYTES, files=1), methods=["POST"]
        ),
        Route("/links/{code}", signed(links.show), methods=["GET"]),
        Route("/links/{code}/edit", signed(links.edit_page), methods=["GET"]),
        Route("/links/{code}/edit", posted(links.edit), methods=["POST"]),
        Route("/links/{code}/disable", posted(links.switch), methods=["POST"]),
        Route("/links/{code}/enable", posted(links.switch), methods=["POST"]),
        Route("/links/{code}/delete", signed(links.delete_page), methods=["GET"]),
        Route("/links/{code}/delete", posted(links.delete), methods=["POST"]),
        Route("/links/{code}/qr.{format}", signed(links.qr), methods=["GET"]),
        Route("/links/{code}/stats", signed(stats.link_stats), methods=["GET"]),
        Route("/keys", signed(keys.index), methods=["GET"]),
        Route("/keys", posted(keys.create), methods=["POST"]),
        Route("/keys/{key_id}/revoke", posted(keys.revoke), methods=["POST"]),
        Route("/links/{code}/block", posted(admin.block, admin=True), methods=["POST"]),
        Route("/links/{code}/unblock", posted(admin.block, admin=True), methods=["POST"]),
        Route("/admin/users", signed(admin.users, admin=True), methods=["GET"]),
        Route("/admin/users/{user_id}", signed(admin.user_page, admin=True), methods=["GET"]),
        Route("/admin/users/{user_id}", posted(admin.change_user, admin=True), methods=["POST"]),
        Route("/admin/dlq", signed(admin.letters, admin=True), methods=["GET"]),
        Route("/admin/dlq/purge-all", signed(admin.purge_all_page, admin=True), methods=["GET"]),
        Route("/admin/dlq/replay", posted(admin.letters_action, admin=True), methods=["POST"]),
        Route("/admin/dlq/purge", posted(admin.letters_action, admin=True), methods=["POST"]),
        Route("/admin/live", signed(live.live_page, admin=True), methods=["GET"]),
        WebSocketRoute("/admin/live/ws", live.live_socket),
        Route("/admin/chaos", signed(chaos.panel, admin=True), methods=["GET"]),
        Route("/admin/chaos", posted(chaos.start, admin=True), methods=["POST"]),
        Route(
            "/admin/chaos/{experiment_id}/stop", posted(chaos.stop, admin=True), methods=["POST"]
        ),
        Mount("/static", app=static, name="static"),
    ]
    ui = Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={
            HTTPException: not_found,
            Problem: too_large,
            DeadlineExceeded: unavailable,
            **dict.fromkeys(UNAVAILABLE, unavailable),
        },
    )
    ui.state.api = Api(api)
    return ui
