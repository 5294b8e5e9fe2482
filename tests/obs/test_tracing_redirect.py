"""The redirect service's spans: parent-based sampling at a ratio, decided before any
span exists, and the access line carrying the span."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from starlette.requests import ClientDisconnect
from starlette.testclient import TestClient

from shorty.obs import tracing
from shorty.obs.logging import configure_logging
from shorty.obs.requestlog import RequestLogMiddleware
from shorty.obs.serverspans import RedirectSpans
from shorty.redirect.app import create_app
from tests.obs.traces import children, one
from tests.redirect.helpers import add_link

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
SAMPLED = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
NOT_SAMPLED = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"}


@pytest.fixture
def link(clean):
    add_link(clean.database_url, "traced1", "https://example.com/landing")
    return "/traced1"


def follow(settings, path, *requests):
    """Each of ``requests`` (headers) sent to a fresh redirect service; their statuses."""
    with TestClient(create_app(settings), follow_redirects=False) as client:
        return [client.get(path, headers=headers).status_code for headers in requests]


def test_at_ratio_zero_a_redirect_makes_no_span_at_all(settings, link, record):
    spans = record(0.0)
    assert follow(settings, link, {}, {}, NOT_SAMPLED) == [302, 302, 302]
    # Not the request's, nor its PostgreSQL and Redis lookups (a miss, then the cache).
    assert spans.get_finished_spans() == ()


def test_a_public_callers_sampled_flag_does_not_decide(settings, link, record):
    """Else anyone could have every redirect traced (a third of the throughput)."""
    spans = record(0.0)
    assert set(follow(settings, link, *[SAMPLED] * 1000)) == {302}
    assert spans.get_finished_spans() == ()


def test_a_public_callers_trace_is_joined_when_the_ratio_draws_it(settings, link, record):
    spans = record(1.0)
    assert follow(settings, link, SAMPLED) == [302]
    request = one(spans.get_finished_spans(), "GET /{code}")
    assert format(request.context.trace_id, "032x") == CALLER_TRACE
    assert request.parent is not None
    assert format(request.parent.span_id, "016x") == CALLER_SPAN


def test_a_trusted_caller_is_followed_at_any_ratio(settings, link, record):
    spans = record(0.0, trust_callers=True)  # OTEL_TRACES_SAMPLER=parentbased_*
    assert follow(settings, link, SAMPLED) == [302]
    finished = spans.get_finished_spans()
    request = one(finished, "GET /{code}")
    assert request.kind is SpanKind.SERVER
    assert request.parent is not None
    assert request.parent.is_remote
    assert format(request.parent.span_id, "016x") == CALLER_SPAN
    assert format(request.context.trace_id, "032x") == CALLER_TRACE
    assert request.attributes["http.route"] == "/{code}"
    assert request.attributes["url.path"] == link
    assert request.attributes["http.response.status_code"] == 302
    lookups = {s.attributes["db.system"] for s in children(finished, request)}
    assert lookups == {"redis", "postgresql"}  # the cache missed, PostgreSQL answered
    assert {s.context.trace_id for s in finished} == {request.context.trace_id}


def test_at_ratio_one_every_redirect_starts_a_trace_unless_its_caller_declined(
    settings, link, record
):
    spans = record(1.0)
    assert follow(settings, link, {}, NOT_SAMPLED, {}) == [302, 302, 302]
    requests = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert len(requests) == 2
    assert all(s.parent is None for s in requests)
    assert len({s.context.trace_id for s in requests}) == 2


def test_probes_make_no_span(settings, record):
    spans = record(1.0)
    assert follow(settings, "/livez", {}, SAMPLED) == [200, 200]
    assert spans.get_finished_spans() == ()


def test_spans_are_made_only_while_some_exporter_takes_them(settings, record):
    # Unrecorded tracing (no exporter: ids only): the hot path is left as it is.
    assert isinstance(create_app(settings)._app, RequestLogMiddleware)
    record(0.01)
    assert isinstance(create_app(settings)._app, RedirectSpans)
    assert tracing.current().ratio == 0.01


def test_the_access_line_carries_the_sampled_redirects_span(settings, link, record, capsys):
    spans = record(0.0, trust_callers=True)
    configure_logging("INFO", "redirect")
    try:
        follow(settings, link, SAMPLED, {})
    finally:
        logging.getLogger().handlers[:] = []
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    traced, plain = [line for line in lines if line["log"]["logger"] == "shorty.request"]
    request = one(spans.get_finished_spans(), "GET /{code}")
    assert traced["trace"]["id"] == format(request.context.trace_id, "032x")
    assert traced["span"]["id"] == format(request.context.span_id, "016x")
    assert "trace" not in plain
    assert "span" not in plain


def test_a_method_http_does_not_define_is_named_http(settings, link, record):
    """A client's own methods would be as many span names as it likes."""
    spans = record(1.0)
    with TestClient(create_app(settings), follow_redirects=False) as client:
        client.request("FOO123", link)
    (request,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert request.name == "HTTP"
    assert request.attributes["http.request.method"] == "_OTHER"
    assert request.attributes["http.request.method_original"] == "FOO123"
    assert "http.route" not in request.attributes


def test_a_caller_that_went_away_is_499_and_no_error_as_in_the_access_log(record):
    """As the redirect service composes them: the span's hook over the request log,
    which answers a caller gone (ClientDisconnect) with nothing and logs 499
    (tests/obs/test_requestlog.py)."""
    spans = record(1.0)

    async def reads_a_body_that_never_comes(scope, receive, send):
        raise ClientDisconnect()

    request_log = RequestLogMiddleware(reads_a_body_that_never_comes, service="redirect")
    app = RedirectSpans(request_log, tracing.current())
    scope = {"type": "http", "method": "GET", "path": "/gone1", "headers": [], "state": {}}
    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.disconnect"}

    asyncio.run(app(scope, receive, send))
    assert sent == []
    (request,) = spans.get_finished_spans()
    assert request.attributes["http.response.status_code"] == 499
    assert request.status.status_code is StatusCode.UNSET
    assert "error.type" not in request.attributes
