"""The SERVER span of each HTTP request.

The API uses OpenTelemetry's ASGI middleware (``api_middleware``), named after the
route template as the request metrics are (``POST /api/v1/shorten``), probes left
out, no spans for each ASGI message, and no query string kept (it may hold what
the access log also leaves out).

The redirect service cannot pay for that on its hot path: ``RedirectSpans`` decides
first, from a draw at the sampling ratio (or a trusted caller's ``traceparent`` flag:
``shorty.obs.sampling``), and only a sampled redirect makes a span (with its
PostgreSQL and Redis calls under it). An unsampled one costs a look at the headers
and a random number. With nothing recording (no exporter), the redirect service
makes no span at all (``redirect_spans`` returns the app as it is).
"""

from __future__ import annotations

import random
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.http import sanitize_method
from opentelemetry.util.types import AttributeValue
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shorty.obs import headercapture
from shorty.obs.requestlog import CLIENT_CLOSED, template_of
from shorty.obs.sampling import PRESAMPLED
from shorty.obs.tracing import Tracing
from shorty.web.health import PROBE_PATHS

_W3C = TraceContextTextMapPropagator()
REDIRECT_ROUTE = "/{code}"
# The middleware searches its regexes in "scheme://host/path": the probes' paths alone
# (not /api/v1/urls/livez, a link's).
_PROBES = "://[^/]*(?:" + "|".join(sorted(PROBE_PATHS)) + ")$"
# "00-<32 hex>-<16 hex>-<2 hex>": the sampled flag is the last bit of character 54.
_TRACEPARENT_LENGTH, _SAMPLED_AT, _ODD_HEX = 55, 54, b"13579bdf"


def api_middleware(tracing: Tracing) -> Middleware:
    """OpenTelemetry's ASGI middleware as the API composes it (inside the load shedding,
    outside the request log, so that the access line carries the span)."""
    return Middleware(
        _traced,
        excluded_urls=_PROBES,
        default_span_details=_method_span_details,
        server_request_hook=_without_query,
        tracer_provider=tracing.provider,
        exclude_spans=["receive", "send"],
        http_capture_headers_sanitize_fields=headercapture.redacted(),
    )


def _method_span_details(scope: Scope) -> tuple[str, dict[str, Any]]:
    """The span's name before routing: the method (``_NamedByRoute`` adds the route)."""
    return _span_method(sanitize_method(scope.get("method", "_OTHER"))), {}


def _traced(app: ASGIApp, /, **options: Any) -> ASGIApp:
    """OpenTelemetry's middleware around ``app``, its span named by route once routed."""
    return OpenTelemetryMiddleware(_NamedByRoute(app), **options)


class _NamedByRoute:
    """Names the request's span ``METHOD /route/{template}`` and sets ``http.route`` as
    its answer starts (the span ends with the answer's last part), once the router has
    chosen the route (a method the path does not take: the path's route, answered 405):
    read where Starlette's router puts it in the scope, as the request metrics read it,
    not by matching every route before the router does (two passes over the routes for
    every request, spans recorded or not). Nothing to do unless the span records."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            await self.app(scope, receive, send)
            return

        async def named_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                template = template_of(scope)
                if template is not None:
                    method = _span_method(sanitize_method(scope.get("method", "_OTHER")))
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
            await send(message)

        await self.app(scope, receive, named_send)


def _span_method(method: str) -> str:
    """A span name's method: a method HTTP does not define (``_OTHER``, as OpenTelemetry's
    ``sanitize_method`` calls it) is ``HTTP``, as OpenTelemetry's conventions say (a
    client's own would be as many span names as it likes)."""
    return "HTTP" if method == "_OTHER" else method


def _without_query(span: trace.Span, scope: Scope) -> None:
    """The URL attributes without the query string (the access log leaves it out too)."""
    if not span.is_recording() or not scope.get("query_string"):
        return
    attributes = getattr(span, "attributes", None) or {}
    url = attributes.get("http.url")
    if isinstance(url, str):
        span.set_attribute("http.url", urlunsplit(urlsplit(url)._replace(query="")))
    if "url.query" in attributes:
        span.set_attribute("url.query", "REDACTED")


def redirect_spans(app: ASGIApp, tracing: Tracing) -> ASGIApp:
    """``app`` with ``RedirectSpans`` around it when spans are recorded; else ``app``."""
    return RedirectSpans(app, tracing) if tracing.recording else app


class RedirectSpans:
    """A SERVER span for the sampled redirects only (see the module's docstring)."""

    def __init__(self, app: ASGIApp, tracing: Tracing) -> None:
        self.app = app
        self.ratio = tracing.ratio
        self.parent_based = tracing.parent_based
        self.trust_callers = tracing.trust_callers
        self.tracer = tracing.tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        caller = b""
        for key, value in scope["headers"]:
            if key == b"traceparent":
                caller = value
                break
        # A caller's flags are the header's last two characters: "not sampled" is
        # followed, "sampled" only from a trusted caller (else the ratio decides).
        followed = self.parent_based and len(caller) >= _TRACEPARENT_LENGTH
        if followed and caller[_SAMPLED_AT] not in _ODD_HEX:
            await self.app(scope, receive, send)
            return
        if followed and self.trust_callers:
            parent = _W3C.extract({"traceparent": caller.decode("latin-1")})
        elif random.random() < self.ratio:  # noqa: S311 (sampling, not secrets)
            parent = otel_context.set_value(PRESAMPLED, True)
            if caller:  # a trace to join, whatever the caller decided
                parent = _W3C.extract({"traceparent": caller.decode("latin-1")}, parent)
        else:
            await self.app(scope, receive, send)
            return
        await self._traced(scope, receive, send, parent)

    async def _traced(
        self, scope: Scope, receive: Receive, send: Send, parent: otel_context.Context
    ) -> None:
        method = sanitize_method(scope["method"])  # a client's own is _OTHER
        routed = method in ("GET", "HEAD")
        attributes: dict[str, AttributeValue] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        if routed:
            attributes["http.route"] = REDIRECT_ROUTE
        if method != scope["method"]:
            attributes["http.request.method_original"] = scope["method"]
        span = self.tracer.start_span(
            f"{method} {REDIRECT_ROUTE}" if routed else _span_method(method),
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        answered: int | None = None
        failed = False

        async def send_status(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except BaseException as exc:
            failed = True
            span.record_exception(exc)
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
            raise
        finally:
            # The request log inside answers every failure itself (a 500) but one: the
            # caller that went away, left unanswered. That is 499 there and here, no error.
            status = answered or (500 if failed else CLIENT_CLOSED)
            span.set_attribute("http.response.status_code", status)
            if status >= 500 and not failed:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end()
            otel_context.detach(token)
