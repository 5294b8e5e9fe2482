"""Spans recorded in memory: the process's tracing while a test runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shorty.obs import tracing
from shorty.obs.sampling import shorty_sampler

Record = Callable[..., InMemorySpanExporter]


@pytest.fixture
def record() -> Iterator[Record]:
    """``record(ratio=1.0, parent_based=True, trust_callers=False)``: install a tracing
    whose spans go to the in-memory exporter it returns (the drivers instrumented, as
    when exporting), until the test ends. Callers are not trusted by default, as by the
    public services."""
    providers: list[TracerProvider] = []

    def install(
        ratio: float = 1.0, *, parent_based: bool = True, trust_callers: bool = False
    ) -> InMemorySpanExporter:
        exporter = InMemorySpanExporter()
        sampler = shorty_sampler(ratio, parent_based=parent_based, trust_callers=trust_callers)
        provider = TracerProvider(
            sampler=sampler, resource=tracing.shorty_resource("test"), shutdown_on_exit=False
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
        tracing.install(
            tracing.Tracing(
                provider, ratio, parent_based, recording=True, trust_callers=trust_callers
            )
        )
        return exporter

    yield install
    tracing.uninstall()
    for provider in providers:
        provider.shutdown()
