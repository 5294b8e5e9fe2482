"""Write Shorty's Grafana dashboards, dashboards/grafana/*.json (`make dashboards`).

    python scripts/dashboards.py            # write the files
    python scripts/dashboards.py --check    # exit 1 if they differ (drift)

The JSON files are what ships (the chart's ConfigMaps read them through
charts/shorty/dashboards; Grafana imports them as they are); this script is where
they are written from, with scripts/grafana.py, so that every panel has the same
shape: the data source is the `datasource` variable (never a data source uid of
someone's Grafana), every query filters on `$namespace`, rates use
`$__rate_interval`, every panel has a unit. The
queries use only the metric names of docs/observability.md; tests/dashboards checks
each against the live services' /metrics and Grafana's own schema (@grafana/schema).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# scripts/grafana.py: run as a script, this file's folder is on sys.path.
from grafana import (
    DATASOURCE,
    Json,
    Panel,
    Row,
    dashboard,
    quantile,
    query_variable,
    rate,
    rate_sum,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "dashboards" / "grafana"
NS = 'namespace=~"$namespace"'
PROBES = 'route!~"/livez|/readyz"'
# The SLOs of dashboards/rules/slo.yaml.
ERROR_BUDGET, LATENCY_BUDGET, LATENCY_BOUND = 0.001, 0.01, "0.1"


# ---- variables ----

NAMESPACE = query_variable(
    "namespace", "Namespace", 'label_values(process_start_time_seconds{component!=""}, namespace)'
)


def component_variable() -> Json:
    return query_variable(
        "component",
        "Component",
        f"label_values(process_start_time_seconds{{{NS}}}, component)",
        multi=True,
    )


def pod_variable(component: str) -> Json:
    return query_variable(
        "pod",
        "Pod",
        f'label_values(process_start_time_seconds{{{NS},component="{component}"}}, pod)',
        multi=True,
    )


REQUESTS = "shorty_http_request_duration_seconds"
COUNT = f"{REQUESTS}_count"
BUCKET = f"{REQUESTS}_bucket"
FIVE_XX = ',status=~"5.."'
# Requests shed at SHORTY_MAX_IN_FLIGHT are answered 503 before the request log: they
# are in this counter only (the lookups' bound answers inside it: the histogram has
# those). Error shares count them as requests and as 5xx, as the rules do.
SHED = "shorty_shed_requests_total"
BOUND_REQUESTS = ',bound="requests"'
WITHIN_BOUND = f',le="{LATENCY_BOUND}"'
FIRING = f'ALERTS{{alertstate="firing",alertname=~"Shorty.*",{NS}}}'
BREAKER_STATES = [
    {
        "type": "value",
        "options": {
            "0": {"text": "closed", "color": "green", "index": 0},
            "1": {"text": "open", "color": "red", "index": 1},
            "2": {"text": "half-open", "color": "orange", "index": 2},
        },
    }
]


def thirty_days(recorded: str) -> str:
    """A 5-minute rate of dashboards/rules/slo.yaml added up over the SLO's 30 days
    (numerator and denominator alike: a busy hour weighs more), instead of a 30-day
    rate over every raw series."""
    return f"sum_over_time(namespace:shorty_redirect_{recorded}:rate5m{{{NS}}}[30d])"


def overview() -> Json:
    sel = f"{NS},{PROBES}"
    shed = f"{NS}{BOUND_REQUESTS}"
    comp = f'{NS},component=~"$component"'
    started = f"changes(process_start_time_seconds{{{comp}}}[$__rate_interval])"
    error_ratio_30d = f"{thirty_days('errors')} / {thirty_days('requests')}"
    slow_ratio_30d = f"({thirty_days('slow')} / {thirty_days('logged')})"
    requests = rate_sum([(COUNT, sel), (SHED, shed)], "service")
    failed = rate_sum([(COUNT, sel + FIVE_XX), (SHED, shed)], "service")
    alerts = {
        "datasource": DATASOURCE,
        "enable": True,
        "hide": False,
        "iconColor": "red",
        "name": "Shorty alerts",
        "target": {
            "expr": FIRING,
            "refId": "alerts",
        },
    }
    items: list[Panel | Row] = [
        Row("Redirect SLOs (30 days; dashboards/rules/slo.yaml)"),
        Panel(
            "Availability",
            "Share of redirects answered without a 5xx (shed ones count as 5xx) over the last"
            " 30 days (SLO 99.9%).",
            [(f"1 - ({error_ratio_30d})", "availability")],
            "percentunit",
            kind="stat",
            width=6,
            height=5,
            thresholds=[(None, "red"), (1 - ERROR_BUDGET, "green")],
        ),
        Panel(
            "Error budget left",
            "Share of the 30-day error budget (0.1% of redirects) not yet spent.",
            [(f"1 - ({error_ratio_30d}) / {ERROR_BUDGET}", "budget left")],
            "percentunit",
            kind="stat",
            width=6,
            height=5,
            thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")],
        ),
        Panel(
            f"Redirects within {int(float(LATENCY_BOUND) * 1000)} ms",
            "Share of redirects answered within 100 ms over the last 30 days (SLO 99%).",
            [(f"1 - {slow_ratio_30d}", "within 100 ms")],
            "percentunit",
            kind="stat",
            width=6,
            height=5,
            thresholds=[(None, "red"), (1 - LATENCY_BUDGET, "green")],
        ),
        Panel(
            "Latency budget left",
            "Share of the 30-day latency budget (1% of redirects slower than 100 ms) not yet"
            " spent.",
            [(f"1 - {slow_ratio_30d} / {LATENCY_BUDGET}", "budget left")],
            "percentunit",
            kind="stat",
            width=6,
            height=5,
            thresholds=[(None, "red"), (0.25, "orange"), (0.5, "green")],
        ),
        Panel(
            "Error budget burn rate",
            "How many times faster than the SLO allows the error budget burns (1 = spent in"
            " exactly 30 days). The fast-burn page fires over 14.4 (1 h and 5 min) or 6 (6 h"
            " and 30 min).",
            [
                (
                    f"namespace:shorty_redirect_error_ratio:rate{window}{{{NS}}} / {ERROR_BUDGET}",
                    window,
                )
                for window in ("5m", "1h", "6h", "3d")
            ],
            "x",
            thresholds=[(None, "green"), (6, "orange"), (14.4, "red")],
        ),
        Panel(
            "Latency budget burn rate",
            "How many times faster than the SLO allows the latency budget burns (redirects"
            " slower than 100 ms against 1%).",
            [
                (
                    f"namespace:shorty_redirect_slow_ratio:rate{window}{{{NS}}} / {LATENCY_BUDGET}",
                    window,
                )
                for window in ("5m", "1h", "6h", "3d")
            ],
            "x",
            thresholds=[(None, "green"), (6, "orange"), (14.4, "red")],
        ),
        Row("Requests, errors, duration per service"),
        Panel(
            "Requests",
            "HTTP requests per second by service (probes left out, shed ones included).",
            [(requests, "{{service}}")],
            "reqps",
            width=8,
        ),
        Panel(
            "Errors (5xx share)",
            "Share of requests answered with a 5xx, by service; a request shed at"
            " SHORTY_MAX_IN_FLIGHT is one (a 503 answered before the request log).",
            [(f"({failed} or {requests} * 0) / {requests}", "{{service}}")],
            "percentunit",
            width=8,
            min=0,
        ),
        Panel(
            "Duration p99",
            "99th percentile of the time to answer, by service.",
            [(quantile(0.99, REQUESTS, sel, "service"), "{{service}}")],
            "s",
            width=8,
        ),
        Panel(
            "In flight",
            "Requests being worked on (probes not counted), by service.",
            [(f"sum by (service) (shorty_http_requests_in_flight{{{NS}}})", "{{service}}")],
            "short",
            width=8,
        ),
        Panel(
            "Shed and out of time",
            "Requests answered 503 at once: past a bound of work in flight (shed), or past"
            " their deadline.",
            [
                (
                    rate(SHED, NS, "service, bound"),
                    "{{service}} shed ({{bound}})",
                ),
                (rate("shorty_deadline_exceeded_total", NS, "service"), "{{service}} deadline"),
            ],
            "reqps",
            width=8,
        ),
        Panel(
            "Firing alerts",
            "Shorty's alerts firing now (Prometheus' ALERTS series).",
            [
                (
                    f"count by (alertname) ({FIRING})",
                    "{{alertname}}",
                )
            ],
            "short",
            width=8,
        ),
        Row("Processes"),
        Panel(
            "CPU",
            "CPU time per second (cores), by component.",
            [(rate("process_cpu_seconds_total", comp, "component"), "{{component}}")],
            "short",
            width=8,
        ),
        Panel(
            "Memory",
            "Resident memory, by pod.",
            [(f"max by (component, pod) (process_resident_memory_bytes{{{comp}}})", "{{pod}}")],
            "bytes",
            width=8,
        ),
        Panel(
            "Event loop lag",
            "How far each process' event loop is behind its heartbeat.",
            [(f"max by (component, pod) (shorty_event_loop_lag_seconds{{{comp}}})", "{{pod}}")],
            "s",
            width=8,
        ),
        Panel(
            "Running versions",
            "Processes by service and version (shorty_build_info): two versions at once"
            " means a rollout in progress.",
            [
                (
                    f"count by (service, version) (shorty_build_info{{{NS}}})",
                    "{{service}} {{version}}",
                )
            ],
            "short",
            width=12,
        ),
        Panel(
            "Process restarts",
            "Processes started in the window, by component (a crash loop shows here first).",
            [
                (
                    f"count by (component) ({started} > 0)",
                    "{{component}}",
                )
            ],
            "short",
            width=12,
        ),
    ]
    return dashboard(
        "shorty-overview",
        "Shorty / Overview",
        "Shorty's SLOs and error budgets, and requests, errors and duration of every service.",
        items,
        [NAMESPACE, component_variable()],
        [alerts],
    )


def redirect() -> Json:
    sel = f'{NS},service="redirect",{PROBES},pod=~"$pod"'
    pods = f'{NS},pod=~"$pod"'
    lookups = "shorty_redirect_lookups_total"
    cached = ',tier!="postgres"'
    items: list[Panel | Row] = [
        Row("Traffic"),
        Panel(
            "Redirects by status",
            "Answers per second by HTTP status (301-308 redirects, 404 unknown, 410 gone);"
            " 503 shed: turned away at SHORTY_MAX_IN_FLIGHT, before the request log.",
            [
                (rate(COUNT, sel, "status"), "{{status}}"),
                (rate(SHED, f'{pods},service="redirect"{BOUND_REQUESTS}'), "503 shed"),
            ],
            "reqps",
            stack=True,
        ),
        Panel(
            "Duration",
            "Time to answer a redirect: percentiles, against the SLO's 100 ms.",
            [(quantile(q, REQUESTS, sel), f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)],
            "s",
            thresholds=[(None, "green"), (float(LATENCY_BOUND), "red")],
        ),
        Panel(
            "Within 100 ms",
            "Share of redirects answered within the SLO's bound.",
            [
                (
                    f"{rate(BUCKET, sel + WITHIN_BOUND)} / {rate(COUNT, sel)}",
                    "within 100 ms",
                )
            ],
            "percentunit",
            width=8,
            max=1,
        ),
        Panel(
            "In flight",
            "Redirects being answered, by pod.",
            [
                (
                    f'sum by (pod) (shorty_http_requests_in_flight{{{pods},service="redirect"}})',
                    "{{pod}}",
                )
            ],
            "short",
            width=8,
        ),
        Panel(
            "Shed",
            "Redirects answered 503 at once, by the bound that was reached (requests in"
            " flight, or lookups waiting for a store).",
            [
                (
                    rate(SHED, f'{pods},service="redirect"', "bound"),
                    "{{bound}}",
                )
            ],
            "reqps",
            width=8,
        ),
        Row("Lookup tiers"),
        Panel(
            "Cache hit ratio",
            "Share of lookups answered by the in-process LRU or Redis (not PostgreSQL).",
            [
                (
                    f"{rate(lookups, pods + cached)} / {rate(lookups, pods)}",
                    "cache hits",
                )
            ],
            "percentunit",
            kind="stat",
            width=6,
            thresholds=[(None, "orange"), (0.9, "green")],
        ),
        Panel(
            "Answered by tier",
            "Share of lookups each tier answered.",
            [
                (
                    f"{rate(lookups, pods, 'tier')} / ignoring (tier) group_left"
                    f" {rate(lookups, pods)}",
                    "{{tier}}",
                )
            ],
            "percentunit",
            width=9,
            stack=True,
            max=1,
        ),
        Panel(
            "Lookups by tier and result",
            "Lookups per second by the tier that answered and what it said (hit: a link;"
            " absent: known not to exist).",
            [(rate(lookups, pods, "tier, result"), "{{tier}} {{result}}")],
            "ops",
            width=9,
        ),
        Panel(
            "Stale copies served",
            "Lookups answered from a copy past its freshness because PostgreSQL could not be"
            " reached, by tier.",
            [(rate("shorty_redirect_stale_total", pods, "tier"), "{{tier}}")],
            "ops",
            width=12,
        ),
        Panel(
            "Redis calls skipped",
            "Redis calls the open Redis breaker skipped, and Redis calls that failed.",
            [
                (rate("shorty_redis_skipped_total", f'{pods},component="redirect"'), "skipped"),
                (rate("shorty_redis_errors_total", f'{pods},component="redirect"'), "errors"),
            ],
            "ops",
            width=12,
        ),
        Row("Clicks"),
        Panel(
            "Click buffer",
            "Clicks waiting in memory to be written to the Redis stream, by pod.",
            [(f"max by (pod) (shorty_click_buffer_size{{{pods}}})", "{{pod}}")],
            "short",
            width=8,
        ),
        Panel(
            "Clicks flushed",
            "Clicks written to the Redis stream per second.",
            [(rate("shorty_clicks_flushed_total", pods), "flushed")],
            "ops",
            width=8,
        ),
        Panel(
            "Clicks dropped",
            "Clicks lost because a buffer was full (Redis away too long), by pod.",
            [(rate("shorty_clicks_dropped_total", pods, "pod"), "{{pod}}")],
            "ops",
            width=8,
            thresholds=[(None, "green"), (0.001, "red")],
        ),
    ]
    return dashboard(
        "shorty-redirect",
        "Shorty / Redirect",
        "The redirect service: status, duration, lookup tiers and the click buffer.",
        items,
        [NAMESPACE, pod_variable("redirect")],
    )


def api() -> Json:
    sel = f'{NS},service="api",{PROBES}'
    api = f'{NS},service="api"'
    decisions, limited = "shorty_ratelimit_decisions_total", ',decision="limited"'
    items: list[Panel | Row] = [
        Row("Requests"),
        Panel(
            "Requests by route",
            "Requests per second by route template and method.",
            [(rate(COUNT, sel, "route, method"), "{{method}} {{route}}")],
            "reqps",
        ),
        Panel(
            "Duration p99 by route",
            "99th percentile of the time to answer, by route template.",
            [(quantile(0.99, REQUESTS, sel, "route"), "{{route}}")],
            "s",
        ),
        Panel(
            "Answers by status",
            "Answers per second by HTTP status; 503 shed: turned away at"
            " SHORTY_MAX_IN_FLIGHT, before the request log.",
            [
                (rate(COUNT, sel, "status"), "{{status}}"),
                (rate(SHED, f"{api}{BOUND_REQUESTS}"), "503 shed"),
            ],
            "reqps",
            stack=True,
        ),
        Panel(
            "5xx share",
            "Share of requests answered with a 5xx, shed ones included (ShortyApiErrors fires"
            " over 5% for 10 minutes).",
            [(f"namespace:shorty_api_error_ratio:rate5m{{{NS}}}", "5xx")],
            "percentunit",
            min=0,
            thresholds=[(None, "green"), (0.05, "red")],
        ),
        Row("Errors and limits"),
        Panel(
            "Problems by type",
            "application/problem+json answers per second, by problem type"
            " (https://shorty.dev/problems/<type>).",
            [(rate("shorty_http_problems_total", f'{NS},service="api"', "type"), "{{type}}")],
            "reqps",
            stack=True,
        ),
        Panel(
            "Rate-limit decisions",
            "Rate-limit checks per second by decision (allowed, limited).",
            [
                (
                    rate("shorty_ratelimit_decisions_total", f'{NS},service="api"', "decision"),
                    "{{decision}}",
                )
            ],
            "ops",
            stack=True,
        ),
        Panel(
            "Limited share",
            "Share of rate-limit checks answered 429.",
            [
                (
                    f"{rate(decisions, api + limited)} / {rate(decisions, api)}",
                    "limited",
                )
            ],
            "percentunit",
            width=8,
            min=0,
        ),
        Panel(
            "Limits decided without Redis",
            "Rate-limit checks decided in process because Redis could not answer.",
            [(rate("shorty_ratelimit_fallback_total", f'{NS},component="api"'), "fallback")],
            "ops",
            width=8,
        ),
        Panel(
            "Out of time and shed",
            "Requests answered 503 because their budget (SHORTY_API_DEADLINE) ran out, or"
            " shed past SHORTY_MAX_IN_FLIGHT.",
            [
                (rate("shorty_deadline_exceeded_total", f'{NS},service="api"'), "deadline"),
                (
                    rate(SHED, f'{NS},service="api"', "bound"),
                    "shed ({{bound}})",
                ),
            ],
            "reqps",
            width=8,
        ),
    ]
    return dashboard(
        "shorty-api",
        "Shorty / API",
        "The API service: routes, duration, problems by type and rate limits.",
        items,
        [NAMESPACE],
    )


def pipeline() -> Json:
    worker = f'{NS},component="worker"'
    items: list[Panel | Row] = [
        Row("Streams"),
        Panel(
            "Consumer lag (age)",
            "Age of the oldest entry not yet delivered to each group (ShortyStreamLagging"
            " fires past 5 minutes).",
            [
                (
                    f"max by (stream, group) (shorty_stream_lag_seconds{{{worker}}})",
                    "{{stream}} → {{group}}",
                )
            ],
            "s",
            thresholds=[(None, "green"), (300, "red")],
        ),
        Panel(
            "Consumer lag (entries)",
            "Entries not yet delivered to each group, and delivered but not acknowledged"
            " (pending).",
            [
                (
                    f"max by (stream, group) (shorty_stream_lag{{{worker}}})",
                    "{{stream}} → {{group}} undelivered",
                ),
                (
                    f"max by (stream, group) (shorty_stream_pending{{{worker}}})",
                    "{{stream}} → {{group}} pending",
                ),
            ],
            "short",
        ),
        Panel(
            "Entries handled",
            "Entries handled per second by outcome: done, retried, dead (moved to the"
            " dead-letter stream).",
            [
                (
                    rate("shorty_stream_entries_total", worker, "stream, group, outcome"),
                    "{{stream}} → {{group}} {{outcome}}",
                )
            ],
            "ops",
            width=8,
        ),
        Panel(
            "Stream length",
            "Entries in each Redis stream.",
            [(f"max by (stream) (shorty_stream_length{{{worker}}})", "{{stream}}")],
            "short",
            width=8,
        ),
        Panel(
            "Batch size p90",
            "90th percentile of the entries a consumer handled in one batch; reads held back"
            " because too many failed entries wait for their retry.",
            [
                (
                    quantile(0.9, "shorty_stream_batch_size", worker, "stream, group"),
                    "{{stream}} → {{group}} p90",
                ),
                (
                    rate("shorty_stream_held_back_total", worker, "stream, group"),
                    "{{stream}} → {{group}} held back/s",
                ),
            ],
            "short",
            width=8,
        ),
        Row("Dead letters and outbox"),
        Panel(
            "Dead letters",
            "Entries in the dead-letter stream (`shorty dlq` lists and replays them).",
            [(f"max (shorty_dlq_length{{{worker}}})", "dead letters")],
            "short",
            kind="stat",
            width=6,
            thresholds=[(None, "green"), (1, "orange")],
        ),
        Panel(
            "Dead letters over time",
            "Entries in the dead-letter stream (ShortyDeadLettersGrowing fires when it grows).",
            [(f"max (shorty_dlq_length{{{worker}}})", "dead letters")],
            "short",
            width=6,
        ),
        Panel(
            "Outbox",
            "Outbox events not yet published, and published per second.",
            [
                (f"max (shorty_outbox_unpublished{{{worker}}})", "unpublished"),
                (rate("shorty_outbox_published_total", worker), "published/s"),
            ],
            "short",
            width=6,
        ),
        Panel(
            "Oldest unpublished event",
            "Age of the oldest outbox event not yet published (ShortyOutboxBacklog fires"
            " past 5 minutes).",
            [(f"max (shorty_outbox_oldest_age_seconds{{{worker}}})", "oldest")],
            "s",
            width=6,
            thresholds=[(None, "green"), (300, "red")],
        ),
        Row("Clicks and statistics"),
        Panel(
            "Clicks stored and rolled up",
            "Clicks stored in PostgreSQL per second, and folded into the hourly rollups.",
            [
                (rate("shorty_clicks_ingested_total", worker), "ingested"),
                (rate("shorty_clicks_rolled_up_total", worker), "rolled up"),
            ],
            "ops",
            width=8,
        ),
        Panel(
            "Clicks waiting for the rollup",
            "Clicks stored but not yet in the statistics.",
            [(f"max (shorty_rollup_waiting_clicks{{{worker}}})", "waiting")],
            "short",
            width=8,
        ),
        Panel(
            "Rollup delay",
            "Age of the oldest click stored but not yet rolled up: how far behind the"
            " statistics are.",
            [(f"max (shorty_rollup_delay_seconds{{{worker}}})", "delay")],
            "s",
            width=8,
        ),
    ]
    return dashboard(
        "shorty-pipeline",
        "Shorty / Pipeline",
        "The worker: stream lag, dead letters, the outbox and the click statistics.",
        items,
        [NAMESPACE],
    )


def operator() -> Json:
    op = f'{NS},component="operator"'
    duration = "shorty_operator_reconcile_duration_seconds"
    items: list[Panel | Row] = [
        Row("Reconciles"),
        Panel(
            "Reconciles by result",
            "ShortLink reconciliations per second, by result.",
            [(rate("shorty_operator_reconciles_total", op, "result"), "{{result}}")],
            "ops",
            stack=True,
        ),
        Panel(
            "Reconcile duration",
            "Time spent reconciling a ShortLink: percentiles.",
            [(quantile(q, duration, op), f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)],
            "s",
        ),
        Row("ShortLinks"),
        Panel(
            "ShortLinks by Ready",
            "ShortLink objects by their Ready condition.",
            [(f"max by (ready) (shorty_operator_shortlinks{{{op}}})", "ready={{ready}}")],
            "short",
            stack=True,
        ),
        Panel(
            "Not ready",
            "ShortLinks whose Ready condition is not true (kubectl get sl shows why).",
            [(f'max (shorty_operator_shortlinks{{{op},ready="false"}})', "not ready")],
            "short",
            kind="stat",
            width=6,
            thresholds=[(None, "green"), (1, "orange")],
        ),
        Panel(
            "Paused",
            "1 while kopf's peering holds the operator: no ShortLink is reconciled.",
            [(f"max (shorty_operator_paused{{{op}}})", "paused")],
            "bool_yes_no",
            kind="stat",
            width=6,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Row("The API, seen from the operator"),
        Panel(
            "Breaker to the API",
            "State of the operator's breaker around its calls to the API.",
            [(f"max by (dependency) (shorty_breaker_state{{{op}}})", "{{dependency}}")],
            "short",
            mappings=BREAKER_STATES,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "Operator CPU",
            "CPU time per second (cores) of the operator.",
            [(rate("process_cpu_seconds_total", op, "pod"), "{{pod}}")],
            "short",
            width=6,
        ),
        Panel(
            "Operator memory",
            "Resident memory of the operator.",
            [(f"max by (pod) (process_resident_memory_bytes{{{op}}})", "{{pod}}")],
            "bytes",
            width=6,
        ),
    ]
    return dashboard(
        "shorty-operator",
        "Shorty / Operator",
        "The ShortLink operator: reconciles by result and duration, Ready conditions.",
        items,
        [NAMESPACE],
    )


def dependencies() -> Json:
    comp = f'{NS},component=~"$component"'
    items: list[Panel | Row] = [
        Row("PostgreSQL pool"),
        Panel(
            "Connections",
            "Pool connections by state (in use, idle), and the pool's size, by component.",
            [
                (
                    f"sum by (component, state) (shorty_db_pool_connections{{{comp}}})",
                    "{{component}} {{state}}",
                ),
                (
                    f"sum by (component) (shorty_db_pool_max_connections{{{comp}}})",
                    "{{component}} max",
                ),
            ],
            "short",
            width=8,
        ),
        Panel(
            "Pool in use",
            "Share of the pool's connections in use, by component.",
            [
                (
                    f'sum by (component) (shorty_db_pool_connections{{{comp},state="in_use"}})'
                    f" / sum by (component) (shorty_db_pool_max_connections{{{comp}}})",
                    "{{component}}",
                )
            ],
            "percentunit",
            width=8,
            max=1,
            thresholds=[(None, "green"), (0.8, "orange")],
        ),
        Panel(
            "Waiting for a connection",
            "Acquires waiting for a free connection, by component.",
            [(f"sum by (component) (shorty_db_pool_waiting{{{comp}}})", "{{component}}")],
            "short",
            width=8,
        ),
        Row("Circuit breakers"),
        Panel(
            "Breaker state",
            "Each breaker's state by component and dependency: 0 closed, 1 open, 2 half-open.",
            [
                (
                    f"max by (component, dependency) (shorty_breaker_state{{{comp}}})",
                    "{{component}} → {{dependency}}",
                )
            ],
            "short",
            mappings=BREAKER_STATES,
            thresholds=[(None, "green"), (1, "red")],
        ),
        Panel(
            "Breaker transitions",
            "State changes per second, by the state entered.",
            [
                (
                    rate("shorty_breaker_transitions_total", comp, "component, dependency, to"),
                    "{{component}} → {{dependency}}: {{to}}",
                )
            ],
            "ops",
        ),
        Row("Redis"),
        Panel(
            "Redis errors",
            "Redis calls that failed, by component.",
            [(rate("shorty_redis_errors_total", comp, "component"), "{{component}}")],
            "ops",
            width=8,
        ),
        Panel(
            "Redis calls skipped",
            "Redis calls skipped while the Redis breaker was open, by component.",
            [(rate("shorty_redis_skipped_total", comp, "component"), "{{component}}")],
            "ops",
            width=8,
        ),
        Panel(
            "Fault injection",
            "Experiments applied now (SHORTY_CHAOS_ENABLED), and the calls they delayed or"
            " failed: a reason for the figures above that is no outage.",
            [
                (
                    f"max by (dependency, kind) (shorty_chaos_active{{{comp}}})",
                    "{{dependency}} {{kind}} active",
                ),
                (
                    rate("shorty_chaos_injected_total", comp, "dependency, kind"),
                    "{{dependency}} {{kind}} injected/s",
                ),
            ],
            "short",
            width=8,
        ),
    ]
    return dashboard(
        "shorty-dependencies",
        "Shorty / PostgreSQL and Redis",
        "How Shorty's processes see their stores: the PostgreSQL pool, the breakers, Redis errors.",
        items,
        [NAMESPACE, component_variable()],
    )


DASHBOARDS = {
    "shorty-overview.json": overview,
    "shorty-redirect.json": redirect,
    "shorty-api.json": api,
    "shorty-pipeline.json": pipeline,
    "shorty-operator.json": operator,
    "shorty-dependencies.json": dependencies,
}


def rendered() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    files = rendered()
    if argv == ["--check"]:
        stale = [
            name
            for name, text in files.items()
            if not (OUT / name).exists() or (OUT / name).read_text() != text
        ]
        extra = sorted({p.name for p in OUT.glob("*.json")} - files.keys())
        if stale or extra:
            print(
                f"dashboards/grafana is out of date ({', '.join(stale + extra)}):"
                " run `make dashboards`"
            )
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} dashboards into {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
