"""The metrics every component exports, read as Prometheus reads them: the live
expositions of the scripted workload (``live_metrics``, tests/livemetrics.py),
parsed with prometheus_client's parser. Every metric of the contract
(docs/observability.md, "Metrics") is there with its labels, the names follow
Prometheus' conventions, and the values moved as the workload implies."""

from __future__ import annotations

import re

import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from shorty import __version__
from shorty.api.routes import OPERATIONS
from shorty.web.health import PROBE_PATHS
from tests.livemetrics import BULK_ITEMS, FOLLOWED, POOL_MAX, REDIRECT_BURST

SERVICES = ("api", "redirect", "worker")
HTTP = ("api", "redirect")
# name (as exposed, without a histogram's _bucket/_sum/_count) -> type, labels, where.
CONTRACT: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {}


def metric(name: str, kind: str, labels: str, *where: str) -> None:
    CONTRACT[name] = (kind, frozenset(labels.split()), where)


metric("shorty_http_request_duration_seconds", "histogram", "service route method status", *HTTP)
metric("shorty_http_problems_total", "counter", "service type", "api")
metric("shorty_http_requests_in_flight", "gauge", "service", *HTTP)
metric("shorty_ratelimit_decisions_total", "counter", "service decision", *HTTP)
metric("shorty_ratelimit_fallback_total", "counter", "", *SERVICES)
metric("shorty_shed_requests_total", "counter", "service bound", *HTTP)
metric("shorty_deadline_exceeded_total", "counter", "service", *HTTP)
metric("shorty_event_loop_lag_seconds", "gauge", "", *SERVICES)
metric("shorty_redirect_lookups_total", "counter", "tier result", "redirect")
metric("shorty_redirect_stale_total", "counter", "tier", "redirect")
metric("shorty_redis_skipped_total", "counter", "", *SERVICES)
metric("shorty_redis_errors_total", "counter", "", *SERVICES)
metric("shorty_invalidation_listener_errors_total", "counter", "", "redirect")
metric("shorty_click_buffer_size", "gauge", "", "redirect")
metric("shorty_clicks_flushed_total", "counter", "", "redirect")
metric("shorty_clicks_dropped_total", "counter", "", "redirect")
metric("shorty_stream_batch_size", "histogram", "stream group", "worker")
metric("shorty_stream_entries_total", "counter", "stream group outcome", "worker")
metric("shorty_stream_length", "gauge", "stream", "worker")
metric("shorty_stream_held_back_total", "counter", "stream group", "worker")
metric("shorty_stream_pending", "gauge", "stream group", "worker")
metric("shorty_stream_lag", "gauge", "stream group", "worker")
metric("shorty_stream_lag_seconds", "gauge", "stream group", "worker")
metric("shorty_dlq_length", "gauge", "", "worker")
metric("shorty_clicks_ingested_total", "counter", "", "worker")
metric("shorty_outbox_published_total", "counter", "", "worker")
metric("shorty_outbox_unpublished", "gauge", "", "worker")
metric("shorty_outbox_oldest_age_seconds", "gauge", "", "worker")
metric("shorty_clicks_rolled_up_total", "counter", "", "worker")
metric("shorty_rollup_waiting_clicks", "gauge", "", "worker")
metric("shorty_rollup_delay_seconds", "gauge", "", "worker")
metric("shorty_db_pool_connections", "gauge", "state", *SERVICES)
metric("shorty_db_pool_max_connections", "gauge", "", *SERVICES)
metric("shorty_db_pool_waiting", "gauge", "", *SERVICES)
metric("shorty_breaker_state", "gauge", "dependency", *SERVICES, "operator")
metric("shorty_breaker_transitions_total", "counter", "dependency to", *SERVICES, "operator")
metric("shorty_chaos_active", "gauge", "dependency kind", *SERVICES)
metric("shorty_chaos_injected_total", "counter", "dependency kind", *SERVICES)
metric("shorty_build_info", "gauge", "service version", *SERVICES, "operator")
metric("shorty_operator_reconciles_total", "counter", "handler result", "operator")
metric("shorty_operator_reconcile_duration_seconds", "histogram", "handler", "operator")
metric("shorty_operator_shortlinks", "gauge", "ready", "operator")
metric("shorty_operator_paused", "gauge", "", "operator")
# Families whose labelled children appear only once something happened (a breaker that
# changed state, an experiment, a consumer held back): their labels are checked when
# they show, not required to show after a quiet workload.
ONLY_ONCE_USED = {
    "shorty_breaker_transitions_total",
    "shorty_chaos_active",
    "shorty_chaos_injected_total",
    "shorty_stream_held_back_total",
}
Samples = dict[str, list[tuple[dict[str, str], float]]]


def families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(text: str) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for one in family.samples:
            found.setdefault(one.name, []).append((one.labels, one.value))
    return found


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    rows = samples(text).get(name, [])
    return sum(v for found, v in rows if labels.items() <= found.items())


def exposed_name(family: Metric) -> str:
    """The name a family's samples carry (a counter's family drops its _total)."""
    return family.name + "_total" if family.type == "counter" else family.name


@pytest.fixture(scope="module")
def exposed(live_metrics: dict[str, str]) -> dict[str, dict[str, Metric]]:
    assert sorted(live_metrics) == ["api", "operator", "redirect", "worker"]
    return {component: families(text) for component, text in live_metrics.items()}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_every_metric_of_the_contract_is_exported_with_its_labels(exposed, name):
    kind, labels, where = CONTRACT[name]
    for component in where:
        by_name = {exposed_name(f): f for f in exposed[component].values()}
        assert name in by_name, f"{name} is not exported by the {component}"
        family = by_name[name]
        assert family.type == kind, f"{name} ({component}) is a {family.type}"
        label_sets = {frozenset(s.labels) - {"le"} for s in family.samples}
        if name in ONLY_ONCE_USED and not label_sets:
            continue
        assert label_sets == {labels}, f"{name} ({component}): {label_sets}"


def test_every_shorty_metric_exported_is_in_the_contract(exposed):
    """Nothing undocumented: a new metric goes into the contract (and the docs' table)."""
    for component, found in exposed.items():
        names = {exposed_name(f) for f in found.values() if f.name.startswith("shorty_")}
        assert names <= set(CONTRACT), f"{component}: {sorted(names - set(CONTRACT))}"


def test_names_and_units_follow_prometheus_conventions(exposed):
    for found in exposed.values():
        for family in found.values():
            name = exposed_name(family)
            assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
            assert family.documentation, f"{name} has no help text"
            for one in family.samples:
                assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) for label in one.labels)
            if not name.startswith("shorty_"):
                continue  # process_* and python_*: prometheus_client's own
            # Base units only: seconds, bytes; a counter ends in _total, nothing else does.
            assert not re.search(r"_(ms|milliseconds|minutes|hours|kb|mb|bytes_total_)", name)
            if family.type == "counter":
                assert name.endswith("_total"), name
            else:
                assert not name.endswith("_total"), name
            if re.search(r"(duration|latency|_age|delay|_lag_s|lag_seconds)", name):
                assert name.endswith("_seconds"), f"{name}: a time is in seconds"
            if family.type == "histogram" and "duration" in name:
                assert name.endswith("_seconds"), name
            if family.type == "gauge" and name.endswith("_info"):
                assert {s.value for s in family.samples} == {1.0}, name


def test_build_info_names_each_component_and_the_version(live_metrics):
    for component, text in live_metrics.items():
        rows = samples(text)["shorty_build_info"]
        assert rows == [({"service": component, "version": __version__}, 1.0)]


def test_requests_are_counted_by_route_template_never_by_path(live_metrics):
    count = "shorty_http_request_duration_seconds_count"
    redirect, api = live_metrics["redirect"], live_metrics["api"]
    code_route = {"service": "redirect", "route": "/{code}"}
    assert value(redirect, count, **code_route, method="GET", status="302") == FOLLOWED
    assert value(redirect, count, **code_route, method="HEAD", status="302") == 1
    assert value(redirect, count, **code_route, status="404") == 1  # the miss
    assert value(redirect, count, **code_route, status="429") == 1
    assert value(api, count, route="/api/v1/shorten", method="POST", status="201") == 1
    assert value(api, count, route="/api/v1/urls/{code}", method="GET", status="404") == 1
    assert value(api, count, route="/api/v1/urls/bulk", method="POST", status="200") == 1
    assert value(api, count, route="/api/v1/urls/{code}/stats", status="200") == 1
    assert value(api, count, route="unmatched", status="404") == 1  # no such route
    assert value(api, count, route="/api/v1/urls", status="429") == 1
    # Every route label is a template of the service's own routes, or "unmatched".
    probes = {*PROBE_PATHS, "unmatched"}
    api_routes = {route.path for route, _ in OPERATIONS} | {"/api/v1/openapi.json", "/api/docs"}
    for text, known in ((redirect, {"/{code}"} | probes), (api, api_routes | probes)):
        routes = {labels["route"] for labels, _ in samples(text)[count]}
        assert routes <= known, routes - known


def test_problems_rate_limits_and_the_redirect_path(live_metrics):
    api, redirect = live_metrics["api"], live_metrics["redirect"]
    problems = "shorty_http_problems_total"
    assert value(api, problems, service="api", type="link-not-found") == 1
    assert value(api, problems, service="api", type="not-found") == 1
    assert value(api, problems, service="api", type="rate-limited") == 1
    assert value(api, problems, type="other") == 0
    decisions = "shorty_ratelimit_decisions_total"
    assert value(redirect, decisions, service="redirect", decision="allowed") == REDIRECT_BURST
    assert value(redirect, decisions, service="redirect", decision="limited") == 1
    assert value(api, decisions, service="api", decision="limited") == 1
    assert value(api, decisions, service="api", decision="allowed") >= 5
    lookups = "shorty_redirect_lookups_total"
    assert value(redirect, lookups, result="hit") == FOLLOWED + 1  # and the HEAD
    assert value(redirect, lookups, tier="postgres", result="absent") == 1
    assert value(redirect, "shorty_clicks_flushed_total") == FOLLOWED  # HEAD is no click
    assert value(redirect, "shorty_clicks_dropped_total") == 0


def test_the_pipeline_and_the_pools(live_metrics):
    worker = live_metrics["worker"]
    assert value(worker, "shorty_clicks_ingested_total") == FOLLOWED
    assert value(worker, "shorty_outbox_published_total") == 1 + BULK_ITEMS + 1
    for stream, group in (("shorty:clicks", "ingest"), ("shorty:events", "cache")):
        done = value(worker, "shorty_stream_entries_total", stream=stream, outcome="done")
        assert done >= 1, stream
        labels = {"stream": stream, "group": group}
        for gauge in ("shorty_stream_pending", "shorty_stream_lag", "shorty_stream_lag_seconds"):
            assert [v for found, v in samples(worker)[gauge] if found == labels], (gauge, stream)
    for gauge in ("shorty_outbox_oldest_age_seconds", "shorty_rollup_delay_seconds"):
        assert value(worker, gauge) >= 0
    for component in SERVICES:
        text = live_metrics[component]
        assert value(text, "shorty_db_pool_max_connections") == POOL_MAX
        opened = value(text, "shorty_db_pool_connections")
        assert 1 <= opened <= POOL_MAX, component
        assert value(text, "shorty_db_pool_waiting") == 0


def test_the_operator_counts_its_reconciles_and_the_shortlinks(live_metrics):
    operator = live_metrics["operator"]
    reconciles = "shorty_operator_reconciles_total"
    assert value(operator, reconciles, handler="upsert", result="ok") == 1
    assert value(operator, "shorty_operator_reconcile_duration_seconds_count") >= 1
    assert value(operator, "shorty_operator_shortlinks", ready="true") == 1
    assert value(operator, "shorty_operator_shortlinks", ready="false") == 0
    assert value(operator, "shorty_breaker_state", dependency="api") == 0
    # Only its own: no service metric at zero.
    names = {f.name for f in text_string_to_metric_families(operator)}
    assert not [n for n in names if n.startswith(("shorty_http", "shorty_redirect", "shorty_db"))]
