"""OpenTelemetry traces for each Shorty process, configured by the standard ``OTEL_*``
variables only (docs/observability.md, "Traces").

- ``OTEL_TRACES_EXPORTER``: ``otlp`` (the default), ``console``, ``none``, or a
  comma-separated list. ``otlp`` exports only when ``OTEL_EXPORTER_OTLP_ENDPOINT``
  or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (the exporter reads those, its
  headers, timeout and certificates itself; the timeout is ``EXPORT_TIMEOUT``
  unless set): without an endpoint nothing is exported, tried or warned about.
  OTLP over HTTP (``http/protobuf``) only. A stopping process gives what is queued
  ``SHUTDOWN_TIMEOUT`` at most.
- ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``: the SDK's six samplers,
  with Shorty's rules for roots (``shorty.obs.sampling``). Unset, the sampler is
  ``parentbased_traceidratio`` and the ratio (the argument) 0.01 for the redirect
  service (``tracesettings.DEFAULT_RATIOS``), 1 for the other processes.
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``: the resource, over
  Shorty's own (``service.name`` = ``shorty-<service>``, as in the logs).
- ``OTEL_SDK_DISABLED=true``: no tracing at all, not even trace ids.

With no exporter, spans still carry ids (the logs' ``trace.id``, the outbox's
``traceparent``) but none is recorded, and PostgreSQL and Redis calls are not
instrumented. A bad value stops the process with one line naming the variable
(``shorty.obs.tracesettings``, which a process calls before it imports this module).
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from shorty import __version__
from shorty.obs.sampling import shorty_sampler
from shorty.obs.tracesettings import (
    TIMEOUTS,
    TraceSettings,
    TracingSettingsError,
    read_settings,
)

log = logging.getLogger(__name__)

# Seconds an export may take, retries included, unless a timeout variable says (the
# SDK's 10 s would keep a silent collector's requests open for long).
EXPORT_TIMEOUT = 5.0
# Characters an attribute's value keeps unless OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT says (the
# SDK keeps any length: a client's User-Agent of any size went to the collector whole).
ATTRIBUTE_LENGTH = 1024
# Seconds a stopping process gives its queued spans: the chart lets a pod 25 s to stop,
# drain and graceful shutdown included; a collector down or slow must not take them.
SHUTDOWN_TIMEOUT = 2.0


@dataclass(frozen=True)
class Tracing:
    """What a process traces with. ``recording``: some exporter takes its spans (else
    no span is recorded, and the drivers are not instrumented)."""

    provider: trace.TracerProvider
    ratio: float = 0.0
    parent_based: bool = True
    recording: bool = False
    trust_callers: bool = False  # see shorty.obs.sampling

    def tracer(self, name: str) -> trace.Tracer:
        return self.provider.get_tracer(name, __version__)

    def shutdown(self, timeout: float = SHUTDOWN_TIMEOUT) -> None:
        """Export what is still queued, for ``timeout`` seconds at most: past that it is
        dropped (the SDK's own shutdown has no bound while an export is retried)."""
        if not isinstance(self.provider, TracerProvider):
            return
        stopping = threading.Thread(
            target=self.provider.shutdown, name="shorty-traces-shutdown", daemon=True
        )
        stopping.start()
        stopping.join(timeout)
        if stopping.is_alive():
            log.warning(
                "spans not exported within %g s of stopping were dropped"
                " (the collector is down or slow)",
                timeout,
            )


def build(service: str, settings: TraceSettings | None = None) -> Tracing:
    """The tracing this process's environment asks for (the exporter and the resource
    read their own variables there too); ``settings``: read already from it."""
    settings = settings or read_settings(service, os.environ)
    if not settings.enabled:
        return Tracing(trace.NoOpTracerProvider())
    try:
        return _built(service, settings)
    except ValueError as exc:  # what read_settings does not know of, as the SDK says it
        raise TracingSettingsError([f"OTEL_* variables: {exc}"]) from None


def _built(service: str, settings: TraceSettings) -> Tracing:
    processors = [_processor(name) for name in settings.exporters]
    resource = shorty_resource(service)
    if not processors:
        return Tracing(
            TracerProvider(sampler=ALWAYS_OFF, resource=resource, shutdown_on_exit=False)
        )
    sampler = shorty_sampler(
        settings.ratio,
        parent_based=settings.parent_based,
        trust_callers=settings.trust_callers,
    )
    # Set, even empty (no limit), the variable is the SDK's to read.
    length = None if "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT" in os.environ else ATTRIBUTE_LENGTH
    provider = TracerProvider(
        sampler=sampler,
        resource=resource,
        span_limits=SpanLimits(max_attribute_length=length),
        # Not at exit by the SDK, which waits as long as an export retries: Tracing.shutdown.
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return Tracing(
        provider,
        settings.ratio,
        settings.parent_based,
        recording=True,
        trust_callers=settings.trust_callers,
    )


def shorty_resource(service: str) -> Resource:
    """``service.name`` = ``shorty-<service>`` (as in the logs), Shorty's version; what
    OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say wins."""
    own = {"service.name": f"shorty-{service}", "service.version": __version__}
    return Resource.create(own).merge(OTELResourceDetector().detect())


def _processor(name: str) -> SimpleSpanProcessor | BatchSpanProcessor:
    if name == "console":  # a debugging aid: one JSON object per line, at once
        return SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stdout, formatter=_one_line))
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    timeout = None if any(os.environ.get(name, "").strip() for name in TIMEOUTS) else EXPORT_TIMEOUT
    return BatchSpanProcessor(OTLPSpanExporter(timeout=timeout))


def _one_line(span: ReadableSpan) -> str:
    return f"{span.to_json(indent=None)}{os.linesep}"


# Before a process installs its own: ids for the logs and the outbox, nothing recorded.
# Made at import, so from no variable (its limits and resource given): a bad one is for
# read_settings to name, not for an import to crash on.
_SILENT = TracerProvider(
    sampler=ALWAYS_OFF,
    resource=Resource.get_empty(),
    span_limits=SpanLimits(
        max_attributes=SpanLimits.UNSET,
        max_events=SpanLimits.UNSET,
        max_links=SpanLimits.UNSET,
        max_span_attributes=SpanLimits.UNSET,
        max_event_attributes=SpanLimits.UNSET,
        max_link_attributes=SpanLimits.UNSET,
        max_attribute_length=SpanLimits.UNSET,
        max_span_attribute_length=SpanLimits.UNSET,
    ),
    shutdown_on_exit=False,
)
_current = Tracing(_SILENT)


def current() -> Tracing:
    """The tracing this process installed (before that: ids only, nothing recorded)."""
    return _current


def install(tracing: Tracing) -> None:
    """Make ``tracing`` the process's: what apps made from now on use, and, when it
    records, PostgreSQL and Redis calls traced (asyncpg and redis-py instrumented)."""
    global _current
    uninstall()
    _current = tracing
    if tracing.recording:
        for instrumentor in _drivers():
            instrumentor.instrument(tracer_provider=tracing.provider)


def uninstall() -> None:
    global _current
    if _current.recording:
        for instrumentor in _drivers():
            instrumentor.uninstrument()
    _current = Tracing(_SILENT)


def _drivers() -> list[Any]:  # BaseInstrumentors (mypy does not see that class)
    """OpenTelemetry's instrumentation of asyncpg and redis-py (one instance each)."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    return [AsyncPGInstrumentor(), RedisInstrumentor()]  # type: ignore[no-untyped-call]


def start(service: str, settings: TraceSettings | None = None) -> Tracing:
    """Tracing for this process from its environment (``settings``: read already from
    it), also as OpenTelemetry's global provider (libraries that trace on their own use
    it), shut down at exit within ``SHUTDOWN_TIMEOUT`` however the process ends.
    ``TracingSettingsError`` when a variable is bad."""
    tracing = build(service, settings)
    install(tracing)
    trace.set_tracer_provider(tracing.provider)
    atexit.register(tracing.shutdown)
    if tracing.recording:
        log.info(
            "traces sampled at %g of the traces this process starts",
            tracing.ratio,
            extra={
                "shorty.tracing.parent_based": tracing.parent_based,
                "shorty.tracing.trust_callers": tracing.trust_callers,
            },
        )
    return tracing
