"""W3C Trace Context as text: the ``traceparent`` the outbox stores and the events
stream carries, written and read by OpenTelemetry's W3C propagator.

An outbox event is written inside the API request's span, so it carries that span;
the worker's spans continue from it (docs/observability.md, "Traces").
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# Always W3C, whatever OTEL_PROPAGATORS says: the stored format is W3C's.
_W3C = TraceContextTextMapPropagator()


def current() -> str | None:
    """The ``traceparent`` of the span in progress; None outside any."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def span_context_of(traceparent: str) -> SpanContext | None:
    """The (remote) span a ``traceparent`` names; None unless it is a valid one."""
    if not traceparent:
        return None
    found = trace.get_current_span(_W3C.extract({"traceparent": traceparent}))
    span = found.get_span_context()
    return span if span.is_valid else None


def ids(span: SpanContext) -> tuple[str, str]:
    """(trace id, span id) in hex, as logs and ``traceparent`` write them."""
    return trace.format_trace_id(span.trace_id), trace.format_span_id(span.span_id)
