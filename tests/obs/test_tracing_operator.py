"""One trace from a ShortLink's reconcile to the API's database write.

The operator and the API are real processes here (the operator against the
emulated Kubernetes API, as in tests/operator), so their spans cannot reach an
in-memory exporter: they are exported as in production, over OTLP/HTTP, to a
receiver this test runs (tests/obs/traces.py), which keeps them."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import aiohttp
import pytest
from opentelemetry.trace import SpanKind

from shorty import embedded
from shorty.embedded import drop_database
from shorty.store import migrate
from shorty_operator.tracing import api_trace_configs, reconcile_span
from tests.e2e.processes import Service, call_json, service_env
from tests.helpers import bearer, user_with_key, wait_for
from tests.obs.traces import Collector, Received
from tests.operator.helpers import Operator, namespace, shortlink
from tests.operator.kube import FakeKube


@contextmanager
def database(stack) -> Iterator[str]:
    """A fresh, migrated database of the test's own."""
    name = f"shorty_trace_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(drop_database(stack.admin_url, name))


def test_a_reconcile_is_one_trace_down_to_the_apis_database_write(stack, tmp_path):
    with ExitStack() as running:
        url = running.enter_context(database(stack))
        _, key = user_with_key(url, "operator@example.com", scopes=("urls:read", "urls:write"))
        collector = running.enter_context(Collector().running())
        otel = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export at once, not every 5 s
        }
        api = Service("api", service_env(url, stack.redis_url, **otel), tmp_path / "api.log")
        running.callback(api.stop)
        kube = running.enter_context(FakeKube())
        operator = Operator(kube, f"http://127.0.0.1:{api.port}", key, tmp_path, env=otel)
        running.callback(lambda: operator.stop() == 0 or pytest.fail("the operator failed"))
        ns = namespace()
        uid = kube.apply(shortlink("traced", ns, code="op-traced"))["metadata"]["uid"]
        chain = wait_for(
            lambda: reconcile_chain(collector.received(), uid),
            30,
            "the reconcile's spans, down to the API's INSERT",
        )
        # Behind the operator's back: its timer puts the link back, in a trace of its own.
        assert call_json(api.port, "DELETE", "/api/v1/urls/op-traced", None, bearer(key))[0] == 204
        repair = wait_for(
            lambda: reconcile_chain(
                collector.received(), uid, {"repair ShortLink"}, after=chain[0].trace_id
            ),
            30,
            "the repair's spans, down to the API's INSERT",
        )
        received = collector.received()

    # The timer's runs that found nothing to do (one a second here) are not recorded.
    operators = {span.name for span in received if span.service == "shorty-operator"}
    assert operators <= {"upsert ShortLink", "repair ShortLink", "PUT"}
    assert repair[0].attributes["shorty.reconcile.drift"] == ("missing",)
    assert repair[0].parent_id == ""
    assert len({span.trace_id for span in repair}) == 1

    reconcile, call, request, insert = chain
    assert reconcile.service == "shorty-operator"
    assert reconcile.parent_id == ""
    # The create's handler makes the link; on a loaded machine the resync timer may get
    # there first (it finds the link missing and puts it): either way a root of its own.
    if reconcile.name == "upsert ShortLink":
        assert reconcile.attributes["shorty.reconcile.result"] == "Synced"
    assert reconcile.attributes["k8s.namespace.name"] == ns
    assert (call.service, call.kind, call.name) == ("shorty-operator", "CLIENT", "PUT")
    assert (request.service, request.kind) == ("shorty-api", "SERVER")
    assert request.attributes["http.route"] == "/api/v1/refs"
    assert (insert.service, insert.kind) == ("shorty-api", "CLIENT")
    assert insert.attributes["db.system"] == "postgresql"
    assert len({span.trace_id for span in chain}) == 1


def reconcile_chain(
    spans: list[Received],
    uid: str,
    names: set[str] = frozenset({"upsert ShortLink", "repair ShortLink"}),
    after: str = "",
) -> tuple[Received, ...] | None:
    """(a reconcile of one of ``names``, its PUT to the API, the API's request span,
    its INSERT INTO urls) once all four have arrived, in a trace other than ``after``."""
    by_id = {span.span_id: span for span in spans}
    for insert in spans:
        if not insert.attributes.get("db.statement", "").lstrip().startswith("INSERT INTO urls"):
            continue
        request = by_id.get(insert.parent_id)
        call = by_id.get(request.parent_id) if request else None
        reconcile = by_id.get(call.parent_id) if call else None
        if (
            reconcile
            and reconcile.name in names
            and reconcile.trace_id != after
            and reconcile.attributes.get("shorty.shortlink.uid") == uid
        ):
            return reconcile, call, request, insert
    return None


def test_the_operators_api_calls_never_carry_its_key_in_a_span(record, monkeypatch):
    """With every request header captured: the key the operator sends is redacted."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_CLIENT_REQUEST", ".*")
    spans = record()
    with Collector().running() as answering:  # any HTTP server that answers a POST

        @reconcile_span("upsert")  # a call outside any is not recorded
        async def call() -> None:
            async with aiohttp.ClientSession(trace_configs=api_trace_configs()) as session:
                headers = {"Authorization": "Bearer shk_s3cret", "X-Team": "blue"}
                async with session.post(answering.endpoint, data=b"", headers=headers) as done:
                    assert done.status == 200

        asyncio.run(call())
    (sent,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert sent.attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert sent.attributes["http.request.header.x_team"] == ("blue",)
