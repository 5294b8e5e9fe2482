"""What tracing adds to a redirect, per request: the redirect service's span hook
(``shorty.obs.serverspans.RedirectSpans``) around an ASGI app that does nothing,
unsampled and sampled, next to that app alone. Spans go to a batch processor whose
exporter drops them (what the hot path pays is the span and the queue, not the
export, which runs on the processor's thread). ``bench/core.py`` prints them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from starlette.types import Message, Receive, Scope, Send

from shorty.obs.sampling import shorty_sampler
from shorty.obs.serverspans import RedirectSpans
from shorty.obs.tracing import Tracing, shorty_resource

HEADERS = [(b"host", b"sho.rt"), (b"user-agent", b"bench/1"), (b"referer", b"https://a.example/")]
SCOPE: Scope = {"type": "http", "method": "GET", "path": "/abcdefg", "headers": HEADERS}


class _Dropped(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def _receive() -> Message:
    return {"type": "http.request"}


async def _send(message: Message) -> None:
    pass


async def _redirect(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 302, "headers": []})


def _drive(app: Callable[[Scope, Receive, Send], object]) -> Callable[[], None]:
    """One request through ``app``, without an event loop (nothing in it waits)."""

    def call() -> None:
        with contextlib.suppress(StopIteration):  # the coroutine's end
            app(dict(SCOPE), _receive, _send).send(None)  # type: ignore[attr-defined]

    return call


def _hooked(ratio: float) -> Callable[[], None]:
    provider = TracerProvider(sampler=shorty_sampler(ratio), resource=shorty_resource("bench"))
    provider.add_span_processor(BatchSpanProcessor(_Dropped()))
    return _drive(RedirectSpans(_redirect, Tracing(provider, ratio, recording=True)))


CASES = {
    "redirect: no-op ASGI call": _drive(_redirect),
    "redirect: + span hook, unsampled": _hooked(0.0),
    "redirect: + span hook, sampled": _hooked(1.0),
}
