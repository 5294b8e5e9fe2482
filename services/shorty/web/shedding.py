"""Load shedding: past a bound of work in flight, answer 503 at once instead of queueing.

A process that takes every request it is sent under overload answers all of them
late (and its callers retry, which adds load); one that turns the excess away at
once keeps answering the rest in time. ``ShedMiddleware`` bounds the HTTP
requests a process works on at once (``SHORTY_MAX_IN_FLIGHT``); past it a request
gets ``503`` with ``Retry-After: 1`` before anything else runs — no request log
line, no lookup. Probes (``/livez``, ``/readyz``) are never shed; the metrics are
on a listener of their own (``shorty.obs.exposition``), outside any bound. The
redirect service also bounds its lookups past the process LRU
(``SHORTY_MAX_LOOKUPS_IN_FLIGHT``, ``redirect/resolve.py``), a smaller bound, so
under a slow PostgreSQL it sheds those before it sheds a single LRU hit.

Each shed request is counted (``shorty_shed_requests_total{service,bound}``) and
logged in bulk (``Shedder``): one WARNING at the first, then at most one every
``LOG_SECONDS`` with the count since, never one line per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from shorty.obs.metrics import IN_FLIGHT, SHED

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 1
LOG_SECONDS = 10.0
SETTINGS = {"requests": "SHORTY_MAX_IN_FLIGHT", "lookups": "SHORTY_MAX_LOOKUPS_IN_FLIGHT"}
Answer = Callable[[Send], Awaitable[None]]


class Overloaded(Exception):
    """Raised where a bound turns work away (a redirect lookup); answered with 503."""


class Shedder:
    """Counts the requests a bound turned away and logs them in bulk: a line at the
    first, then at most one per ``LOG_SECONDS`` with the number since (the last one
    when the window ends, so a burst is never left out of the log)."""

    def __init__(self, service: str, bound: str, limit: int) -> None:
        self.service = service
        self.bound = bound
        self.limit = limit
        self._counter = SHED.labels(service, bound)
        self._since = 0  # shed since the last line
        self._next_line = 0.0
        self._report_due = False  # a line is scheduled for the end of the window

    def shed(self) -> None:
        self._counter.inc()
        self._since += 1
        now = time.monotonic()
        if now >= self._next_line:
            self._report()
        elif not self._report_due:
            self._report_due = True
            asyncio.get_running_loop().call_later(self._next_line - now, self._report)

    def _report(self) -> None:
        self._report_due = False
        if not self._since:
            return
        log.warning(
            "%s shed %d request(s) with 503: %d %s in flight is the bound (%s);"
            " the next such line in %g s at most",
            self.service,
            self._since,
            self.limit,
            self.bound,
            SETTINGS[self.bound],
            LOG_SECONDS,
        )
        self._since = 0
        self._next_line = time.monotonic() + LOG_SECONDS


def fixed_answer(
    content_type: bytes, body: bytes, *, retry_after: int = RETRY_AFTER_SECONDS
) -> Answer:
    """A 503 with ``Retry-After``, built once: shedding must cost next to nothing."""
    start = {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
            (b"cache-control", b"no-store"),
        ],
    }
    end = {"type": "http.response.body", "body": body}

    async def answer(send: Send) -> None:
        await send(dict(start))  # a copy: a middleware further out may add headers
        await send(end)

    return answer


PLAIN = fixed_answer(b"text/plain; charset=utf-8", b"Overloaded: retry in a second.\n")


class Bound:
    """At most ``limit`` requests at once: ``busy`` is the count its owner keeps (one
    event loop: a plain integer); past it, ``refuse`` counts, logs and answers."""

    __slots__ = ("answer", "busy", "limit", "shedder")

    def __init__(self, service: str, limit: int, answer: Answer = PLAIN) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1 (no Bound at all for none)")
        self.limit = limit
        self.busy = 0
        self.answer = answer
        self.shedder = Shedder(service, "requests", limit)
        IN_FLIGHT.labels(service).set_function(lambda: self.busy)

    async def refuse(self, send: Send) -> None:
        self.shedder.shed()
        await self.answer(send)


class ShedMiddleware:
    """At most ``limit`` HTTP requests in ``app`` at once; the next ones get ``answer``
    (a 503) at once. Paths in ``skip_paths`` (the probes) are neither counted nor shed.
    (The redirect service keeps the same ``Bound`` in its own outer layer, which
    saves the hot path a coroutine.)"""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        limit: int,
        answer: Answer = PLAIN,
        skip_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.bound = Bound(service, limit, answer)
        self.skip_paths = skip_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        bound = self.bound
        if bound.busy >= bound.limit:
            await bound.refuse(send)
            return
        bound.busy += 1
        try:
            await self.app(scope, receive, send)
        finally:
            bound.busy -= 1
