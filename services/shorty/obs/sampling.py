"""Which spans are recorded: Shorty's sampler, built from ``OTEL_TRACES_SAMPLER``.

A span with a parent follows its parent's decision (the ``parentbased_*``
samplers; the plain ones re-decide by the trace id, as the SDK's do) — but for a
caller not trusted (``trust_callers`` false: the public services' default, see
``shorty.obs.tracesettings``), whose sampled ``traceparent`` is joined (same trace
id, its span the parent) while whether the span is recorded is drawn here at the
ratio (``CallerDraw``): else anyone could have every request traced. A caller that
says "not sampled" is followed: that costs nothing. A span without a parent — a
root — is decided here:

- a root another part of Shorty already drew for (``PRESAMPLED`` in the context
  it starts from: the redirect service's request hook, which draws before any
  span exists so that an unsampled redirect costs no span at all) is recorded;
- a root with links (a batch of messages: the outbox relay's send) is recorded
  when one of the messages it links to was;
- a CLIENT root (a PostgreSQL or Redis call made outside any request or job: a
  worker's polling, the redirect's click flush, a probe) is never recorded: it
  would be a trace of one span, many times a second;
- a CONSUMER root without links (a consumed batch none of whose messages carried
  a trace: the clicks) neither: a trace per batch, several a second, is noise;
- a ``ROUTINE`` root (the operator's resync timer, whose runs mostly find nothing
  to do) neither; what one does find to do is a root of its own;
- any other root (a request, a consumed batch, a reconcile) by the ratio, from
  its trace id, so that every process agrees on a trace.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

PRESAMPLED = otel_context.create_key("shorty-presampled")
ROUTINE = otel_context.create_key("shorty-routine")


class Roots(Sampler):
    """The decision for spans without a parent (every span, when not parent-based)."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self._by_trace_id = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        decide: Sampler = self._by_trace_id
        if otel_context.get_value(PRESAMPLED, parent_context):
            decide = ALWAYS_ON
        elif otel_context.get_value(ROUTINE, parent_context):
            decide = ALWAYS_OFF
        elif not trace.get_current_span(parent_context).get_span_context().is_valid:
            if links:
                sampled = any(link.context.trace_flags.sampled for link in links)
                decide = ALWAYS_ON if sampled else ALWAYS_OFF
            elif kind in (SpanKind.CLIENT, SpanKind.CONSUMER):
                decide = ALWAYS_OFF
        return decide.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ShortyRoots{{{self.ratio}}}"


class CallerDraw(Sampler):
    """A caller's sampled ``traceparent``, not trusted: recorded at ``ratio`` by a draw
    of ours, not by the trace id, which the caller chose (one whose low half is zeros
    passes any ratio). Recorded when the redirect's request hook drew already."""

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio

    def should_sample(
        self,
        parent_context: otel_context.Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        drawn = otel_context.get_value(PRESAMPLED, parent_context) or (
            random.random() < self.ratio  # noqa: S311 (sampling, not secrets)
        )
        decide = ALWAYS_ON if drawn else ALWAYS_OFF
        return decide.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ShortyCallerDraw{{{self.ratio}}}"


def shorty_sampler(
    ratio: float, *, parent_based: bool = True, trust_callers: bool = True
) -> Sampler:
    """``Roots`` at ``ratio``, behind the parent's decision when ``parent_based`` (a
    remote parent's only when ``trust_callers``; else ``CallerDraw``)."""
    roots = Roots(ratio)
    if not parent_based:
        return roots
    if trust_callers:
        return ParentBased(roots)
    return ParentBased(roots, remote_parent_sampled=CallerDraw(ratio))
