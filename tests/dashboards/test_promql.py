"""Every PromQL expression of the dashboards and the rules parses, and asks only for
what Shorty's processes export: each metric name is in the live /metrics of the
scripted workload (``live_metrics``), of the component a selector names, with the
labels it matches on (and the histogram bucket it picks)."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.dashboards.queries import (
    Query,
    Selector,
    dashboard_queries,
    recorded,
    rule_queries,
    selectors,
)

# Series nobody's /metrics carries, each where it comes from.
NOT_EXPORTED = {
    # Prometheus itself: the alerts it holds (the overview's annotations and panel).
    "ALERTS": "Prometheus",
    # kube-state-metrics (dashboards/rules/kubernetes.yaml; docs/runbooks.md says it is needed).
    "kube_pod_status_ready": "kube-state-metrics",
    "kube_deployment_spec_replicas": "kube-state-metrics",
    "kube_deployment_status_replicas_available": "kube-state-metrics",
    "kube_job_failed": "kube-state-metrics",
    "kube_job_status_start_time": "kube-state-metrics",
    "kube_cronjob_created": "kube-state-metrics",
    "kube_cronjob_next_schedule_time": "kube-state-metrics",
    "kube_cronjob_spec_suspend": "kube-state-metrics",
    "kube_cronjob_status_last_schedule_time": "kube-state-metrics",
    "kube_cronjob_status_last_successful_time": "kube-state-metrics",
}
# Labels the scrape adds (the chart's PodMonitors), not the process.
SCRAPE_LABELS = {"namespace", "pod", "component", "instance", "job", "container", "endpoint"}
QUERIES = dashboard_queries() + rule_queries()


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.where)
def test_every_expression_parses(query: Query):
    assert "$" not in query.promql, f"a Grafana variable left unsubstituted: {query.promql}"
    try:
        found = selectors(query.promql)
    except ValueError as error:
        pytest.fail(f"{query.where}: {error}\n{query.promql}")
    assert found, f"{query.where}: no metric in {query.expr}"


def test_a_broken_expression_does_not_parse():
    broken = {
        "sum(rate(x[5m])": "unclosed left parenthesis",
        "rate(x[5 minutes])": "unexpected character inside brackets",
        "x{a=b}": "unexpected identifier 'b'",
        "sum by le (x)": "invalid promql query",
    }
    for promql, says in broken.items():
        with pytest.raises(ValueError, match=re.escape(says)):
            selectors(promql)


Exported = dict[str, dict[str, list[dict[str, str]]]]  # component → sample name → label sets

# The sample names of a family by its type (a counter "x" is sampled as x_total...).
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
}
# Declared by the code (every process lists them, without a sample) but not reached by
# the scripted workload: their names are checked, their labels cannot be.
NOT_REACHED = {
    "shorty_breaker_transitions_total": "a breaker changes state only when a store fails",
    "shorty_stream_held_back_total": "only while SHORTY_MAX_RETRYING failed entries wait",
    "shorty_chaos_active": "fault injection is off unless SHORTY_CHAOS_ENABLED",
    "shorty_chaos_injected_total": "fault injection is off unless SHORTY_CHAOS_ENABLED",
}


@pytest.fixture(scope="session")
def exported(live_metrics: dict[str, str]) -> Exported:
    """Each component's sample names with the label sets they have; a family the process
    declares without a sample (a labelled metric no event has touched) with none."""
    found: Exported = {}
    for component, text in live_metrics.items():
        samples = found.setdefault(component, {})
        for family in text_string_to_metric_families(text):
            for suffix in SUFFIXES.get(family.type, ("",)):
                samples.setdefault(family.name + suffix, [])
            for sample in family.samples:
                samples.setdefault(sample.name, []).append(dict(sample.labels))
    assert set(found) == {"api", "redirect", "worker", "operator"}, sorted(found)
    return found


def problems_of(selector: Selector, exported: Exported) -> list[str]:
    component = selector.equal("component")
    components = [component] if component else sorted(exported)
    if component is not None and component not in exported:
        return [f"component {component!r} is none of {sorted(exported)}"]
    declared = [c for c in components if selector.name in exported[c]]
    if not declared:
        return [f"{selector.name} is not exported by {component or 'any component'}"]
    label_sets = [ls for c in declared for ls in exported[c][selector.name]]
    if not label_sets:
        if selector.name in NOT_REACHED:
            return []
        return [
            f"{selector.name} is declared but the workload never sets it: reach it"
            " (tests/livemetrics.py), or list it in NOT_REACHED with why"
        ]
    problems = []
    for label, op, value in selector.matchers:
        if label in SCRAPE_LABELS or label == "__name__":
            continue
        if not any(label in labels for labels in label_sets):
            problems.append(f"{selector.name} has no label {label!r}")
        elif label == "le" and op == "=" and not any(ls.get("le") == value for ls in label_sets):
            buckets = sorted({ls["le"] for ls in label_sets}, key=float)
            problems.append(f"{selector.name} has no bucket le={value!r} (has {buckets})")
    return problems


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.where)
def test_every_metric_is_exported_with_the_labels_matched_on(query: Query, exported: Exported):
    problems = []
    for selector in selectors(query.promql):
        if selector.name in NOT_EXPORTED or selector.name in recorded():
            continue
        problems += problems_of(selector, exported)
    assert not problems, f"{query.where}: {problems}\n{query.expr}"


def test_the_check_finds_a_misspelt_metric_a_missing_label_and_bucket(exported: Exported):
    """The check above can fail: a name, a label or a bucket the code does not have."""
    wrong = {
        "shorty_http_request_duration_seconds_cuont": "is not exported",
        'shorty_redirect_lookups_total{layer="lru"}': "has no label 'layer'",
        'shorty_http_request_duration_seconds_bucket{le="0.2"}': "has no bucket",
        'shorty_dlq_length{component="operator"}': "is not exported by operator",
    }
    for promql, says in wrong.items():
        [selector] = selectors(promql)
        problems = problems_of(selector, exported)
        assert any(says in problem for problem in problems), (promql, problems)


def test_not_reached_lists_only_what_the_workload_does_not_reach(exported: Exported):
    for name in NOT_REACHED:
        declared = [c for c, samples in exported.items() if name in samples]
        assert declared, f"{name} is declared nowhere"
        reached = [c for c in declared if exported[c][name]]
        assert not reached, f"{name} has samples in {reached} now: take it out of NOT_REACHED"


def test_the_allow_list_holds_only_names_in_use():
    used = {s.name for query in QUERIES for s in selectors(query.promql)}
    assert set(NOT_EXPORTED) <= used, sorted(set(NOT_EXPORTED) - used)
    assert recorded() <= used, sorted(recorded() - used)  # a recording rule nobody reads
