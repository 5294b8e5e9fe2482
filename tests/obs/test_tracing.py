"""Tracing as the OTEL_* variables set it: exporters, sampling, resource, the
traceparent text, and the trace ids in log lines."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys

import pytest
from click.testing import CliRunner
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.cli import main as shorty
from shorty.obs import tracecontext, tracesettings, tracing
from shorty.obs.logging import configure_logging
from shorty.obs.sampling import PRESAMPLED, shorty_sampler
from tests.obs.traces import Collector, one

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture
def lines(capsys):
    """The JSON lines written to stdout so far (logging reset at the end)."""
    yield lambda: [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logging.getLogger().handlers[:] = []


def setenv(monkeypatch, environ):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


def spans_of(built):
    with built.tracer("test").start_as_current_span("work") as span:
        return span


@pytest.mark.parametrize(
    "environ",
    [
        {},  # OTLP is the default exporter: off without an endpoint
        {"OTEL_TRACES_EXPORTER": "otlp"},
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    ],
)
def test_without_an_exporter_ids_are_made_but_nothing_is_recorded(environ, monkeypatch, caplog):
    setenv(monkeypatch, environ)
    caplog.set_level(logging.DEBUG)
    built = tracing.build("api")
    span = spans_of(built)
    assert not built.recording
    assert span.get_span_context().is_valid  # the logs and the outbox still get ids
    assert not span.is_recording()
    built.shutdown()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_endpoint_sends_the_spans_over_otlp(monkeypatch):
    with Collector().running() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint)
        built = tracing.build("worker")
        assert built.recording
        span = spans_of(built)
        built.shutdown()  # flushes the batch
        (received,) = collector.received()
    assert (received.name, received.service) == ("work", "shorty-worker")
    assert received.span_id == format(span.get_span_context().span_id, "016x")


def test_the_console_exporter_writes_one_json_line_per_span(monkeypatch, lines):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    built = tracing.build("api")
    span = spans_of(built)
    built.shutdown()
    (written,) = lines()
    assert written["name"] == "work"
    assert written["context"]["span_id"] == f"0x{span.get_span_context().span_id:016x}"
    assert written["resource"]["attributes"]["service.name"] == "shorty-api"


@pytest.mark.parametrize(
    ("environ", "kept"),
    [
        ({}, 1024),  # a client's 5,000-character User-Agent is not kept whole
        ({"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "10"}, 10),
        ({"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5000"}, 5000),
    ],
)
def test_attribute_values_are_cut_at_a_length(environ, kept, monkeypatch, lines):
    setenv(monkeypatch, {"OTEL_TRACES_EXPORTER": "console", **environ})
    built = tracing.build("api")
    with built.tracer("test").start_as_current_span("work") as span:
        span.set_attribute("user_agent.original", "U" * 5000)
    built.shutdown()
    (written,) = lines()
    assert len(written["attributes"]["user_agent.original"]) == kept


def test_the_sdk_disabled_makes_no_trace_at_all(monkeypatch):
    setenv(monkeypatch, {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})
    built = tracing.build("api")
    assert not built.recording
    assert not spans_of(built).get_span_context().is_valid


@pytest.mark.parametrize(
    ("service", "environ", "expected"),
    [
        ("redirect", {}, (0.01, True)),  # the public's redirects: a low default
        ("api", {}, (1.0, True)),
        ("redirect", {"OTEL_TRACES_SAMPLER_ARG": "0.2"}, (0.2, True)),
        ("api", {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}, (1.0, True)),
        (
            "api",
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
            (0.5, True),
        ),
        ("redirect", {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, (1.0, True)),
        ("api", {"OTEL_TRACES_SAMPLER": "always_off"}, (0.0, False)),
        (
            "api",
            {"OTEL_TRACES_SAMPLER": "TraceIdRatio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            (0.1, False),
        ),
    ],
)
def test_sampling_settings(service, environ, expected):
    settings = tracesettings.read_settings(service, environ)
    assert (settings.ratio, settings.parent_based) == expected


@pytest.mark.parametrize(
    ("service", "sampler", "trusted"),
    [
        ("redirect", "", False),  # the public's callers
        ("api", "", False),
        ("worker", "", True),  # its remote parents are the outbox's: Shorty's own
        ("operator", "", True),
        ("redirect", "parentbased_traceidratio", True),  # the operator says so
        ("api", "parentbased_always_on", True),
    ],
)
def test_callers_are_trusted_by_the_public_services_only_when_told(service, sampler, trusted):
    environ = {"OTEL_TRACES_SAMPLER": sampler} if sampler else {}
    assert tracesettings.read_settings(service, environ).trust_callers is trusted


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER: zipkin is not one of"),
        ({"OTEL_TRACES_EXPORTER": "none,console"}, "OTEL_TRACES_EXPORTER: none with another"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER: jaeger_remote is not"),
        ({"OTEL_TRACES_SAMPLER_ARG": "2"}, "OTEL_TRACES_SAMPLER_ARG: must be a number from 0"),
        ({"OTEL_TRACES_SAMPLER_ARG": "lots"}, "OTEL_TRACES_SAMPLER_ARG: must be a number from 0"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported",
        ),
    ],
)
def test_a_bad_variable_is_named(environ, problem):
    with pytest.raises(tracesettings.TracingSettingsError) as refused:
        tracesettings.read_settings("api", environ)
    (line,) = refused.value.problems
    assert line.startswith(problem)


ENDPOINT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER: sometimes is not one of"),
        ({"OTEL_PROPAGATORS": "tracecontext,bogus"}, "OTEL_PROPAGATORS: bogus is not one of"),
        ({"OTEL_SDK_DISABLED": "yes"}, "OTEL_SDK_DISABLED: yes is not true or false"),
        (
            {"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "abc"},
            "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: abc is not a whole number, 0 or more",
        ),
        (
            {"OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "-1"},
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: -1 is not a whole number, 0 or more",
        ),
        (
            {**ENDPOINT, "OTEL_BSP_SCHEDULE_DELAY": "-1"},
            "OTEL_BSP_SCHEDULE_DELAY: -1 is not a whole number, 1 or more",
        ),
        (
            {**ENDPOINT, "OTEL_BSP_MAX_QUEUE_SIZE": "abc"},
            "OTEL_BSP_MAX_QUEUE_SIZE: abc is not a whole number, 1 or more",
        ),
        (
            {**ENDPOINT, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "999999"},
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 999999 is more than the queue holds",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "not a url"},
            "OTEL_EXPORTER_OTLP_ENDPOINT: not a url is not an http:// or https:// URL",
        ),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"},
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: collector:4318 is not an http:// or https://",
        ),
        (
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "-5"},
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: -5 is not a number of seconds above 0",
        ),
        (
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_COMPRESSION": "zstd"},
            "OTEL_EXPORTER_OTLP_COMPRESSION: zstd is not one of gzip, deflate, none",
        ),
        (
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_CERTIFICATE": "/nonexistent/ca.pem"},
            "OTEL_EXPORTER_OTLP_CERTIFICATE: /nonexistent/ca.pem is not a file",
        ),
        (
            # Never echoed: the value of a header may be a token.
            {**ENDPOINT, "OTEL_EXPORTER_OTLP_HEADERS": "x-team=a,authorization Bearer s3cret"},
            "OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not name=value",
        ),
    ],
)
def test_a_bad_variable_stops_the_service_with_one_line(environ, problem, monkeypatch):
    setenv(
        monkeypatch,
        {
            "SHORTY_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
            "SHORTY_REDIS_URL": "redis://127.0.0.1:9/0",
            **environ,
        },
    )
    try:
        result = CliRunner().invoke(shorty, ["serve", "worker", "--metrics-port", "0"])
    finally:
        logging.getLogger().handlers[:] = []
    assert result.exit_code == 2
    heading, line = result.output.splitlines()
    assert heading == "Error: invalid settings:"
    assert line.startswith(f"  {problem}")
    assert "s3cret" not in result.output


@pytest.mark.parametrize(
    ("service", "name", "value"),
    [
        ("api", "OTEL_PROPAGATORS", "bogus"),  # read as the instrumentation is imported
        ("worker", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "abc"),  # as the SDK is
    ],
)
def test_a_variable_opentelemetry_reads_at_import_is_one_line_too(service, name, value):
    """A process of its own, which has not imported OpenTelemetry's modules yet."""
    env = {
        **os.environ,
        **ENDPOINT,
        "SHORTY_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "SHORTY_REDIS_URL": "redis://127.0.0.1:9/0",
        name: value,
    }
    command = [sys.executable, "-m", "shorty", "serve", service, "--metrics-port", "0"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    heading, line = done.stderr.splitlines()
    assert heading == "Error: invalid settings:"
    assert line.startswith(f"  {name}: {value} is not")


def test_the_environment_names_the_service_over_shortys_default(monkeypatch):
    assert tracing.shorty_resource("api").attributes["service.name"] == "shorty-api"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "edge-api")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")
    resource = tracing.shorty_resource("api").attributes
    assert (resource["service.name"], resource["deployment.environment"]) == ("edge-api", "prod")


def remote(sampled: bool) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(int(TRACE, 16), 0x00F067AA0BA902B7, is_remote=True, trace_flags=flags)


def decide(sampler, *, parent=None, kind=SpanKind.INTERNAL, links=(), presampled=False) -> bool:
    context = otel_context.Context()
    if parent is not None:
        context = trace.set_span_in_context(NonRecordingSpan(parent), context)
    if presampled:
        context = otel_context.set_value(PRESAMPLED, True, context)
    result = sampler.should_sample(context, 0x1234, "s", kind, None, list(links))
    return bool(result.decision.is_sampled())


def test_roots_and_children_are_decided_by_shortys_rules():
    always, never = shorty_sampler(1.0), shorty_sampler(0.0)
    assert decide(always)
    assert not decide(never)
    assert decide(never, presampled=True)  # the redirect's hook drew already
    assert not decide(always, kind=SpanKind.CLIENT)  # a call outside any request or job
    assert not decide(always, kind=SpanKind.CONSUMER)  # a batch that carried no trace
    assert decide(always, kind=SpanKind.CLIENT, parent=remote(True))
    assert not decide(always, parent=remote(False))  # the parent's decision
    assert decide(never, parent=remote(True))
    # A batch is recorded when one of the messages it links to was.
    assert decide(never, kind=SpanKind.CLIENT, links=[Link(remote(False)), Link(remote(True))])
    assert not decide(always, kind=SpanKind.CLIENT, links=[Link(remote(False))])
    # Not parent-based: the ratio, whatever the parent said.
    assert decide(shorty_sampler(1.0, parent_based=False), parent=remote(False))


def test_an_untrusted_callers_sampled_flag_is_drawn_for_not_read_from_its_trace_id():
    """The caller chooses the trace id: one whose low half is zeros passes any ratio
    the trace id is compared with."""
    random.seed(17)
    chosen = SpanContext(
        int(TRACE[:16] + "0" * 16, 16),
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    untrusted = shorty_sampler(0.01, trust_callers=False)
    recorded = sum(decide(untrusted, parent=chosen, kind=SpanKind.SERVER) for _ in range(1000))
    assert 0 < recorded < 50  # about 10
    assert not decide(shorty_sampler(0.0, trust_callers=False), parent=remote(True))
    assert not decide(untrusted, parent=remote(False))  # "not sampled" is followed
    assert decide(shorty_sampler(0.0, trust_callers=True), parent=remote(True))
    assert decide(untrusted, parent=remote(True), presampled=True)  # the redirect drew


def test_a_public_callers_sampled_flag_does_not_decide_for_the_api(settings, record):
    spans = record(0.0)
    with TestClient(create_app(settings)) as client:
        for _ in range(200):
            client.get("/api/v1/urls/abc", headers={"traceparent": CALLER})
    assert spans.get_finished_spans() == ()


def test_traceparent_text_is_the_span_in_progress():
    assert tracecontext.current() is None
    provider = TracerProvider(sampler=shorty_sampler(1.0), shutdown_on_exit=False)
    with provider.get_tracer("test").start_as_current_span("work") as span:
        text = tracecontext.current()
    ids = tracecontext.ids(span.get_span_context())
    assert text == f"00-{ids[0]}-{ids[1]}-{text[-2:]}"
    assert int(text[-2:], 16) & 1  # sampled
    parsed = tracecontext.span_context_of(CALLER)
    assert parsed is not None
    assert tracecontext.ids(parsed) == (TRACE, "00f067aa0ba902b7")
    for bad in ("", "garbage", f"00-{'0' * 32}-00f067aa0ba902b7-01", CALLER.upper()):
        assert tracecontext.span_context_of(bad) is None


def test_log_lines_written_inside_a_span_carry_its_ids(lines):
    configure_logging("INFO", "worker")
    log = logging.getLogger("shorty.test")
    provider = TracerProvider(sampler=shorty_sampler(0.0), shutdown_on_exit=False)
    log.warning("outside")
    with provider.get_tracer("test").start_as_current_span("work") as span:  # unsampled too
        log.warning("inside")
    outside, inside = [line for line in lines() if line["log"]["logger"] == "shorty.test"]
    assert "trace" not in outside
    assert "span" not in outside
    trace_id, span_id = tracecontext.ids(span.get_span_context())
    assert (inside["trace"]["id"], inside["span"]["id"]) == (trace_id, span_id)


def test_the_apis_lines_carry_its_span_which_continues_the_caller(settings, record, lines):
    spans = record()
    configure_logging("INFO", "api")
    with TestClient(create_app(settings)) as client:
        lines()
        client.get("/api/v1/urls/abc?secret=s3cret", headers={"traceparent": CALLER})
    request = one(spans.get_finished_spans(), "GET /api/v1/urls/{code}")
    assert request.parent is not None
    assert request.parent.is_remote
    assert format(request.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert request.attributes["http.route"] == "/api/v1/urls/{code}"
    assert request.attributes["http.status_code"] == 401
    assert "s3cret" not in json.dumps(dict(request.attributes))  # no query kept
    (access,) = [line for line in lines() if line["log"]["logger"] == "shorty.request"]
    assert (access["trace"]["id"], access["span"]["id"]) == tracecontext.ids(request.context)


def test_probes_are_not_traced_but_a_link_named_like_one_is(settings, record):
    spans = record()
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").status_code == 200
        client.get("/api/v1/urls/livez")
    requests = [s.name for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert requests == ["GET /api/v1/urls/{code}"]


def test_a_method_http_does_not_define_is_named_http_by_the_api(settings, record):
    spans = record()
    with TestClient(create_app(settings)) as client:
        assert client.request("FOO123", "/api/v1/urls/abc").status_code == 405
        client.request("FOO123", "/no/such/route")
    requests = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in requests] == ["HTTP /api/v1/urls/{code}", "HTTP"]
    assert {s.attributes["http.method"] for s in requests} == {"_OTHER"}


SECRETS = {
    "authorization": "Bearer s3cret-key",
    "proxy-authorization": "Basic s3cret-proxy",
    "cookie": "sid=s3cret-cookie",
    "x-api-key": "s3cret-api-key",
}


@pytest.mark.parametrize("added", ["", "x-team"])
def test_captured_headers_never_carry_a_credential(settings, record, monkeypatch, added):
    """Even with every header captured, and with more names to redact (which would
    replace the list, left to OpenTelemetry)."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", ".*")
    if added:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", added)
    spans = record()
    with TestClient(create_app(settings)) as client:
        client.get("/api/v1/urls/abc", headers={**SECRETS, "x-team": "blue"})
    (request,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    attributes = dict(request.attributes)
    assert "s3cret" not in json.dumps(attributes)
    for name in SECRETS:
        key = "http.request.header." + name.replace("-", "_")
        assert attributes[key] == ("[REDACTED]",)
    team = "[REDACTED]" if added else "blue"
    assert attributes["http.request.header.x_team"] == (team,)
    assert attributes["http.response.header.content_type"] == ("application/problem+json",)
