"""Adds the RateLimit-* headers of the request's rate-limit decision to its response."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shorty.ratelimit.limiter import headers


class RateLimitHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            decision = scope.get("state", {}).get("ratelimit")
            if message["type"] == "http.response.start" and decision is not None:
                present = {name.lower() for name, _ in message.get("headers", ())}
                extra = [
                    (name.lower().encode(), value.encode())
                    for name, value in headers(decision).items()
                    if name.lower().encode() not in present
                ]
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_limits)
