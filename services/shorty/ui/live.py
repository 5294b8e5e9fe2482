"""The live system view: every service's figures, pushed over a WebSocket every
second, read from each service's own metrics and readiness (``shorty.live``, the
same figures as the API's ``/api/v1/admin/live``). The page shows the figures as
they were when it was made, so it reads without JavaScript; the script keeps it
live.

Who may watch is the API's to say: the socket opens only after the API answered
``/api/v1/admin/live`` for the session, and asks again every ``RECHECK``
seconds; a refusal closes it. When the API cannot say (PostgreSQL down: just
when the view matters) the last yes holds for ``GRACE`` seconds at most."""

from __future__ import annotations

import json
import logging
import time

import anyio
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect

from shorty.api.live import shown
from shorty.bootstrap import api_deps_of
from shorty.ui import session
from shorty.ui.client import api_of
from shorty.ui.render import error_page, page, refused
from shorty.ui.session import Viewer
from shorty.web.clientip import is_https

log = logging.getLogger(__name__)
EVERY = 1.0  # seconds between two pushes
RECHECK = 30.0  # seconds between two asks of the API
GRACE = 300.0  # seconds a yes holds while the API cannot answer
ASK = 2.0  # seconds an ask of the API may take (a WebSocket has no request deadline)
_POLICY = 1008  # WebSocket close code: policy violation (not allowed)


async def live_page(request: Request, signed: Viewer) -> Response:
    answer = await api_of(request).call(request, "GET", "/api/v1/admin/live", token=signed.token)
    if answer.status == 403:
        return await error_page(request, 403, "Admins only", "This page is for admins.")
    if not answer.ok:
        return await refused(request, answer)
    snapshot = answer.json()
    context = {"snapshot": snapshot, "targets": bool(snapshot["services"])}
    return await page(request, "live.html", context, section="admin")


def _same_origin(websocket: WebSocket) -> bool:
    """A browser names the page that opens a WebSocket (Origin): only ours may, so
    another site cannot read the figures with a visitor's cookie."""
    proxies = api_deps_of(websocket).settings.trusted_proxies
    scheme = "https" if is_https(websocket.scope, proxies) else "http"
    return websocket.headers.get("origin") == f"{scheme}://{websocket.headers.get('host', '')}"


async def _allowed(connection: HTTPConnection) -> bool | None:
    """The API's word on whether this session may watch: True, False, or None when
    it cannot say (PostgreSQL or the API busy or down)."""
    try:
        signed = await session.lookup(connection)
    except Exception:
        return None
    if signed is None:
        return False
    answer = await api_of(connection).call(
        connection, "GET", "/api/v1/admin/live", token=signed.token
    )
    if answer.status in (401, 403):
        return False
    return True if answer.ok else None


async def live_socket(websocket: WebSocket) -> None:
    # Accepted first, then closed when refused: a browser sees a refused handshake
    # only as 1006 (and would retry); 1008 tells the page to stop.
    await websocket.accept()
    if not _same_origin(websocket) or not await _allowed(websocket):
        await websocket.close(code=_POLICY)
        return
    # Until the browser goes or the pushing stops (a refusal closed the socket).
    async with anyio.create_task_group() as group:

        async def push() -> None:
            await _push(websocket)
            group.cancel_scope.cancel()

        group.start_soon(push)
        await _until_closed(websocket)
        group.cancel_scope.cancel()


async def _until_closed(websocket: WebSocket) -> None:
    """Whatever the browser sends is read and dropped, until it goes."""
    try:
        while True:
            await websocket.receive_text()
    except (WebSocketDisconnect, RuntimeError):
        return


async def _push(websocket: WebSocket) -> None:
    sampler = api_deps_of(websocket).live
    granted = checked = time.monotonic()
    while True:
        now = time.monotonic()
        if now - checked >= RECHECK:
            checked = now
            allowed = await _allowed(websocket)
            if allowed is False or (allowed is None and now - granted > GRACE):
                await websocket.close(code=_POLICY)
                return
            if allowed:
                granted = now
        await websocket.send_text(json.dumps(shown(await sampler.snapshot())))
        await anyio.sleep(EVERY)
