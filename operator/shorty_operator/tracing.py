"""The operator's traces: one span per handler call (``<handler> ShortLink``, a root
of its own), and under it each call to Shorty's API (OpenTelemetry's aiohttp client
instrumentation), which sends the ``traceparent`` the API continues: one trace runs
from a reconcile to the API's database write. Configured like every Shorty process
(``shorty.obs.tracing``, the OTEL_* variables)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import aiohttp
import kopf
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from shorty.obs import headercapture, tracing
from shorty.obs.sampling import ROUTINE

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def reconcile_span(handler: str, *, routine: bool = False) -> Callable[[Handler], Handler]:
    """Run the kopf handler inside a span named ``<handler> ShortLink`` that says which
    object it was about; ``reconciled`` adds how it went. ``routine``: a timer's run,
    which most times finds nothing to do: not recorded, nor are its API calls (a trace
    per ShortLink per interval would be noise); what it finds to do is ``repair_span``'s
    trace."""

    def wrap(func: Handler) -> Handler:
        @functools.wraps(func)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            context = otel_context.Context()  # each call is a trace of its own
            if routine:
                context = otel_context.set_value(ROUTINE, True, context)
            with _tracer().start_as_current_span(
                f"{handler} ShortLink",
                context=context,
                attributes=_about(handler, kwargs.get("body")),
            ) as span:
                if kwargs.get("retry"):
                    span.set_attribute("shorty.reconcile.retry", kwargs["retry"])
                return await func(*args, **kwargs)

        return traced  # type: ignore[return-value]

    return wrap


@contextmanager
def repair_span(body: kopf.Body, drift: list[str]) -> Iterator[None]:
    """A trace of its own (a root: recorded at the ratio) for the change a routine run
    found to make, ``drift`` the fields it puts back (none: the link was missing)."""
    attributes = _about("repair", body)
    attributes["shorty.reconcile.drift"] = drift or ["missing"]
    with _tracer().start_as_current_span(
        "repair ShortLink", context=otel_context.Context(), attributes=attributes
    ):
        yield


def _tracer() -> trace.Tracer:
    return tracing.current().tracer(__name__)


def _about(handler: str, body: kopf.Body | None) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {"shorty.reconcile.handler": handler}
    meta = body.metadata if body is not None else None
    if meta is not None:
        attributes |= {
            "k8s.namespace.name": meta.namespace or "",
            "shorty.shortlink.name": meta.name or "",
            "shorty.shortlink.uid": meta.uid or "",
        }
    return attributes


def reconciled(result: str) -> None:
    """What the reconcile in progress came to (a Ready reason, or Deleted)."""
    trace.get_current_span().set_attribute("shorty.reconcile.result", result)


def api_trace_configs() -> list[aiohttp.TraceConfig]:
    """For the API client's session: a CLIENT span per call, and its ``traceparent``."""
    # Imported here, once the OTEL_* variables are checked: OpenTelemetry's
    # instrumentation reads OTEL_PROPAGATORS as it is imported, and fails with a traceback.
    from opentelemetry.instrumentation.aiohttp_client import create_trace_config
    from opentelemetry.util.http import (
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE,
        get_custom_headers,
    )

    return [
        create_trace_config(
            tracer_provider=tracing.current().provider,
            # Read from the environment by the instrumentor only, not by this function.
            captured_request_headers=get_custom_headers(
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST
            ),
            captured_response_headers=get_custom_headers(
                OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_RESPONSE
            ),
            sensitive_headers=headercapture.redacted(),  # the API key among them
        )
    ]
