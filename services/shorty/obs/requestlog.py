"""One JSON log line per HTTP request, and an X-Request-ID on every response."""

from __future__ import annotations

import logging
import os
import random
import re
import time
from dataclasses import dataclass

from opentelemetry import trace
from prometheus_client import Counter, Histogram
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shorty.obs import tracecontext
from shorty.obs.accesslog import AccessLog
from shorty.obs.metrics import PROBLEMS, REQUEST_SECONDS
from shorty.web.clientip import peer_of
from shorty.web.problems import PROBLEM_TYPES

log = logging.getLogger("shorty.request")
_PROBLEM = [(b"content-type", b"application/problem+json")]
_INTERNAL = (
    b'{"type":"https://shorty.dev/problems/internal-error","title":"Internal server error",'
    b'"status":500,"detail":"Something failed on our side; the request id is in X-Request-ID."}'
)
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# A problem body as web/problems.py renders it starts with its type: its slug is the
# access line's ``error.code`` (what Kibana counts as "top problem types").
_PROBLEM_START = b'{"type":"https://shorty.dev/problems/'
_SLUG = re.compile(rb"[a-z0-9-]{1,64}")
# What the access log and the latency histogram record when the caller went away
# before it was answered (nginx's "client closed request"): not a 5xx, nothing sent.
CLIENT_CLOSED = 499
# The metrics' labels are bounded whatever a client sends: a method outside these is
# "other", a path no route matched "unmatched", a route is its template.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """The route of a request a pure-ASGI app answers itself, put in ``scope["route"]``
    where Starlette's router puts its own (both have the template as ``path_format``:
    ``/api/v1/urls/{code}`` for a route of ``/api/v1/urls/{code:code}``)."""

    path_format: str


class RequestLogMiddleware:
    """Logs method, path (never the query: it may hold secrets), status and duration,
    and observes the request latency histogram.

    An exception that escapes the app is logged with the request id and answered
    with a 500 problem that carries the id, so a user's report can be traced. A
    caller that disconnected while its body was read (``ClientDisconnect``) is no
    such error: one INFO line, recorded as 499, and no answer (nobody is there).
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
        access_log: bool = True,
        sample: float = 1.0,
        slow: float = 0.1,
    ) -> None:
        self.app = app
        self.service = service
        self.skip_paths = skip_paths
        self.log_client = log_client
        self.access = AccessLog(service)
        self.access_log = access_log
        # Below 1, ordinary requests are logged at this rate; errors and slow ones always.
        self.sample = sample
        self.slow = slow
        # Label children made once each. Bounded: every part of the key is (the routes'
        # templates, METHODS, the statuses the app sends; the problem catalogue).
        self._histograms: dict[tuple[str | None, str, int], Histogram] = {}
        self._problems: dict[str, Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._flush_at_shutdown(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        answered = Answered(send, (b"x-request-id", request_id.encode()))
        gone = False
        started = time.perf_counter()
        try:
            await self.app(scope, receive, answered)
        except ClientDisconnect:
            gone = True
            went_away(scope, request_id)
        except Exception:
            unhandled(scope, request_id)
            if not answered.status:
                await internal_error(answered)
        finally:
            elapsed = time.perf_counter() - started
            status = answered.status or (CLIENT_CLOSED if gone else 500)
            self.record(
                scope,
                status,
                elapsed,
                request_id,
                answered.problem,
                problem_seen=answered.problem_seen,
            )

    def record(
        self,
        scope: Scope,
        status: int,
        elapsed: float,
        request_id: str,
        problem: str | None = None,
        *,
        problem_seen: bool = False,
    ) -> None:
        """What a finished request leaves behind: its latency in the histogram, a
        problem answer in the problems' counter (``problem_seen``: it was one,
        ``problem``: its slug, if read), and, by the rules of ``__init__`` (skipped
        paths, sampling), its access line."""
        self._histogram(scope, status).observe(elapsed)
        if problem_seen:
            self._problem(problem).inc()
        if self._wants_line(scope["path"], status, elapsed):
            trace_id, span_id = _trace_ids(scope)
            self.access.write(
                method=scope["method"],
                path=scope["path"],
                status=status,
                seconds=elapsed,
                request_id=request_id,
                user_agent=_header(scope, b"user-agent")[:512],
                client=(peer_of(scope) or None) if self.log_client else None,
                trace_id=trace_id,
                span_id=span_id,
                problem=problem,
            )

    def record_known(
        self,
        scope: Scope,
        now: float,
        status: int,
        elapsed: float,
        request_id: str,
        user_agent: str,
    ) -> None:
        """``record`` for an app that serves a request without this middleware (the
        redirect's hot path, which has read these facts once for everything it
        records): no problem, no client, no trace (neither its own span nor a
        caller's); the method, path and ``request_id`` need no JSON escaping
        (``AccessLog.write_known``)."""
        self._histogram(scope, status).observe(elapsed)
        if self._wants_line(scope["path"], status, elapsed):
            self.access.write_known(
                now, scope["method"], scope["path"], status, elapsed, request_id, user_agent
            )

    def _wants_line(self, path: str, status: int, elapsed: float) -> bool:
        return (
            self.access_log
            and (path not in self.skip_paths or status >= 400)
            and self.access.enabled
            and (
                self.sample >= 1
                or status >= 400
                or elapsed >= self.slow
                or random.random() < self.sample  # noqa: S311 (sampling, not secrets)
            )
        )

    def _histogram(self, scope: Scope, status: int) -> Histogram:
        template = template_of(scope)
        method = scope["method"]
        key = (template, method if method in METHODS else "other", status)
        child = self._histograms.get(key)
        if child is None:
            route = template if template is not None else UNMATCHED
            child = REQUEST_SECONDS.labels(self.service, route, key[1], str(status))
            self._histograms[key] = child
        return child

    def _problem(self, slug: str | None) -> Counter:
        known = slug if slug in PROBLEM_TYPES else "other"
        child = self._problems.get(known)
        if child is None:
            child = self._problems[known] = PROBLEMS.labels(self.service, known)
        return child

    def _flush_at_shutdown(self, send: Send) -> Send:
        async def sender(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown"):
                self.access.flush()
            await send(message)

        return sender


def went_away(scope: Scope, request_id: str) -> None:
    """The line for a caller that disconnected before it was answered (a 499)."""
    log.info(
        "client went away during %s %s",
        scope["method"],
        scope["path"],
        extra={"http.request.id": request_id},
    )


def unhandled(scope: Scope, request_id: str) -> None:
    """The line (with its traceback) for an exception that escaped the app."""
    log.exception(
        "unhandled error on %s %s",
        scope["method"],
        scope["path"],
        extra={"http.request.id": request_id},
    )


# The slug of the 500 problem below, for what records it.
INTERNAL_ERROR = "internal-error"


async def internal_error(send: Send, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """The 500 problem, pointing at X-Request-ID (``send`` or ``headers`` add it)."""
    await send({"type": "http.response.start", "status": 500, "headers": [*_PROBLEM, *headers]})
    await send({"type": "http.response.body", "body": _INTERNAL})


def accepted_id(value: bytes | None) -> str | None:
    """A caller's X-Request-ID, if it is one to keep (safe in a log line and a header)."""
    if not value:
        return None
    candidate = value.decode("latin-1")
    return candidate if _SAFE_ID.fullmatch(candidate) else None


class Answered:
    """A request's ``send``: adds its X-Request-ID and keeps what was answered: the
    status (0 until the answer starts), whether it is a problem+json and its type's
    slug (read from the body's first part)."""

    __slots__ = ("_slug_next", "id_header", "problem", "problem_seen", "send", "status")

    def __init__(self, send: Send, id_header: tuple[bytes, bytes]) -> None:
        self.send = send
        self.id_header = id_header
        self.status = 0
        self.problem_seen = self._slug_next = False
        self.problem: str | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            headers = [*message.get("headers", ()), self.id_header]
            message["headers"] = headers
            self.problem_seen = self._slug_next = self.status >= 400 and _PROBLEM[0] in headers
        elif self._slug_next:
            self._slug_next = False
            self.problem = problem_slug(message.get("body", b""))
        await self.send(message)


def template_of(scope: Scope) -> str | None:
    """The template of the route that took the request (``/api/v1/urls/{code}``), read
    once the app has run: Starlette's router (or the app itself, with a
    ``RouteTemplate``) has put the route in the scope. None when no route matched."""
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def _trace_ids(scope: Scope) -> tuple[str | None, str | None]:
    """The request's span (the API's server span, a sampled redirect's); else the
    caller's trace when it sent one, read only for the line (its span is not ours)."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        return tracecontext.ids(span)
    caller = tracecontext.span_context_of(_header(scope, b"traceparent"))
    return (tracecontext.ids(caller)[0], None) if caller else (None, None)


def problem_slug(body: bytes) -> str | None:
    if not body.startswith(_PROBLEM_START):
        return None
    match = _SLUG.match(body, len(_PROBLEM_START))
    return match.group().decode() if match else None


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            return accepted_id(value)
    return None
