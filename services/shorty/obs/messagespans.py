"""Spans of the events pipeline, after OpenTelemetry's messaging conventions.

An outbox event carries the ``traceparent`` of the request that wrote it: that is
the message's creation context, kept as it is all the way. The relay's ``send``
span (one per batch, kind CLIENT) and a consumer's ``process`` span (one per
batch, kind CONSUMER) link to the creation context of each message they handle,
and when there is exactly one, it is also their parent: a change made through the
API is then one trace, from the request to the cache update it caused.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanKind
from opentelemetry.util.types import AttributeValue

from shorty.obs import tracecontext

SYSTEM = "redis"  # Redis Streams
MAX_LINKS = 128  # the SDK's default span link limit: past it links are dropped anyway


@contextmanager
def message_span(
    tracer: trace.Tracer,
    operation: str,
    destination: str,
    kind: SpanKind,
    traceparents: Sequence[str],
    attributes: dict[str, AttributeValue],
) -> Iterator[trace.Span]:
    """The current span while the block handles the messages that carried
    ``traceparents`` (an empty one: none), named ``<operation> <destination>``."""
    created = [c for c in map(tracecontext.span_context_of, traceparents) if c is not None]
    parent = otel_context.Context()  # whatever runs around it: this is its own work
    if len(traceparents) == 1 and created:
        parent = trace.set_span_in_context(NonRecordingSpan(created[0]), parent)
    common: dict[str, AttributeValue] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": destination,
    }
    if len(traceparents) != 1:
        common["messaging.batch.message_count"] = len(traceparents)
    with tracer.start_as_current_span(
        f"{operation} {destination}",
        context=parent,
        kind=kind,
        attributes=common | attributes,
        links=[Link(c) for c in created[:MAX_LINKS]],
    ) as span:
        yield span
