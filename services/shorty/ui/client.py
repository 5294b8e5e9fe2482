"""The JSON API, called in-process by the pages as the person signed in.

The pages hold no rule of their own: every read and write goes through the API's
handlers (their validation, authorisation, rate limits and audit), with an access
token for the browser's session, and the answer is shown as it came. The call
carries the browser's client address and forwarded headers, so the API's
per-client limits count the person, not the server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Headers of the browser's request that the API call does not carry: its own
# credentials, body and content negotiation are the call's.
_DROPPED = frozenset(
    {b"authorization", b"cookie", b"content-type", b"content-length", b"accept", b"host"}
)


@dataclass(slots=True)
class Answer:
    """The API's answer to one call, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def problem(self) -> dict[str, Any]:
        """The problem details of a refusal (an empty one when the body is none)."""
        if self.ok or not self.headers.get("content-type", "").endswith("json"):
            return {}
        found = self.json()
        return found if isinstance(found, dict) else {}


@dataclass(slots=True)
class _Capture:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in message.get("headers", [])
            }
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")


class Api:
    """Calls of ``app`` (the API's routes with their error handlers, no middleware:
    the browser's request has been through that once already)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def call(
        self,
        request: HTTPConnection,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Answer:
        """``method path`` with ``body`` as JSON, as the holder of ``token``."""
        capture = _Capture()
        scope, receive = self._request(request, method, path, token, body, params)
        await self._app(scope, receive, capture.send)
        return Answer(capture.status, capture.headers, bytes(capture.body))

    def forward(
        self,
        request: Request,
        path: str,
        *,
        token: str,
        params: Mapping[str, Any] | None = None,
    ) -> ASGIApp:
        """A response that is the API's answer to ``GET path``, streamed to the browser
        as it comes (an export of every link is never held whole)."""

        async def respond(_scope: Scope, _receive: Receive, send: Send) -> None:
            scope, receive = self._request(request, "GET", path, token, None, params)
            await self._app(scope, receive, send)

        return respond

    def _request(
        self,
        request: HTTPConnection,
        method: str,
        path: str,
        token: str | None,
        body: Any,
        params: Mapping[str, Any] | None,
    ) -> tuple[Scope, Receive]:
        outer = request.scope
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = [(n, v) for n, v in outer["headers"] if n not in _DROPPED]
        headers += [
            (b"host", request.headers.get("host", "localhost").encode("latin-1")),
            (b"accept", b"application/json"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(content)).encode()),
        ]
        if token is not None:
            headers.append((b"authorization", b"Bearer " + token.encode()))
        query = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        scope: Scope = {
            "type": "http",
            "asgi": outer.get("asgi", {"version": "3.0"}),
            "http_version": outer.get("http_version", "1.1"),
            "method": method,
            "scheme": {"ws": "http", "wss": "https"}.get(outer["scheme"], outer["scheme"]),
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(query, doseq=True).encode(),
            "headers": headers,
            "client": outer.get("client"),
            "server": outer.get("server"),
            "state": dict(outer.get("state", {})),
        }
        sent = False
        # Past the body: whatever the browser's connection says next (a disconnect);
        # a WebSocket's messages are its own, never the call's.
        outer_receive = request.receive if isinstance(request, Request) else _disconnected

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": content, "more_body": False}
            return await outer_receive()

        return scope, receive


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def api_of(request: HTTPConnection) -> Api:
    """The API the web app calls (set up by ``shorty.ui.app.create_ui``)."""
    api: Api = request.app.state.api
    return api
