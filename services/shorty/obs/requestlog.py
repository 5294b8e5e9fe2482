"""One JSON log line per HTTP request, and an X-Request-ID on every response."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shorty.obs.metrics import REQUEST_SECONDS

log = logging.getLogger("shorty.request")
_PROBLEM = [(b"content-type", b"application/problem+json")]
_INTERNAL = (
    b'{"type":"https://shorty.dev/problems/internal-error","title":"Internal server error",'
    b'"status":500,"detail":"Something failed on our side; the request id is in X-Request-ID."}'
)
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestLogMiddleware:
    """Logs method, path (never the query: it may hold secrets), status and duration.

    An exception that escapes the app is logged with the request id and answered
    with a 500 problem that carries the id, so a user's report can be traced.
    ``log_client`` adds the client address (the redirect service leaves it out:
    the public's addresses are not kept anywhere).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        skip_paths: frozenset[str] = frozenset(),
        log_client: bool = True,
    ) -> None:
        self.app = app
        self.service = service
        self.skip_paths = skip_paths
        self.log_client = log_client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception(
                "unhandled error on %s %s",
                scope["method"],
                scope["path"],
                extra={"http.request.id": request_id},
            )
            if not response_started:
                await send_with_id(
                    {"type": "http.response.start", "status": 500, "headers": _PROBLEM}
                )
                await send_with_id({"type": "http.response.body", "body": _INTERNAL})
        finally:
            elapsed = time.perf_counter() - started
            REQUEST_SECONDS.labels(self.service, scope["method"], str(status)).observe(elapsed)
            if scope["path"] not in self.skip_paths or status >= 400:
                _log(scope, status, elapsed, request_id, self.log_client)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SAFE_ID.fullmatch(candidate) else None
    return None


def _log(scope: Scope, status: int, elapsed: float, request_id: str, log_client: bool) -> None:
    headers = dict(scope["headers"])
    client = scope.get("client") if log_client else None
    log.info(
        "%s %s %d",
        scope["method"],
        scope["path"],
        status,
        extra={
            "http.request.method": scope["method"],
            "http.request.id": request_id,
            "http.response.status_code": status,
            "url.path": scope["path"],
            "event.duration": int(elapsed * 1e9),
            "client.address": client[0] if client else None,
            "user_agent.original": headers.get(b"user-agent", b"").decode("latin-1")[:512],
        },
    )
