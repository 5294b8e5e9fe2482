"""The API's per-request deadline: a budget from the moment a request arrives, and a
backstop that answers 503 by that deadline + 0.1 s whatever the request waits on.

``DeadlineMiddleware`` starts the request's ``Budget`` (SHORTY_API_DEADLINE,
``shorty.resilience.deadline``), which every wait inside the request reads: the
waits end at the deadline and raise ``DeadlineExceeded``, which the API answers
with its ``deadline-exceeded`` problem. The backstop is for everything else (a
cleanup that waits, a call nobody bounded): ``GRACE`` past the deadline it cancels
the request and answers the same 503 itself. Once the response has started, the
budget is lifted: a streamed body (the CSV export) is bounded page by page by each
query's own timeout, not cut off mid-file. Probes are not subject to it (they have
SHORTY_READY_TIMEOUT).
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shorty.obs.metrics import DEADLINE_EXCEEDED
from shorty.resilience import deadline
from shorty.web.shedding import Answer


class DeadlineMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        seconds: float,
        answer: Answer,
        skip_paths: frozenset[str] = frozenset(),
    ) -> None:
        if seconds <= 0:
            raise ValueError("a deadline must be positive")
        self.app = app
        self.seconds = seconds
        self.answer = answer  # the 503 the backstop sends
        self.skip_paths = skip_paths
        self._exceeded = DEADLINE_EXCEEDED.labels(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        budget = deadline.start(self.seconds)
        backstop = asyncio.timeout(budget.seconds + deadline.GRACE)
        started = False

        async def send_lifting(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                budget.lift()
                backstop.reschedule(None)
            await send(message)

        try:
            async with backstop:
                await self.app(scope, receive, send_lifting)
        except TimeoutError:
            if not backstop.expired() or started:
                raise
            self._exceeded.inc()
            await self.answer(send)
