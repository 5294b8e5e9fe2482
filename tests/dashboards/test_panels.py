"""The error and SLO panels evaluated by promtool on made-up series, with the rules of
dashboards/rules loaded (the SLO panels read their recorded rates): a healthy service
shows 0 errors and full availability (not "No data": a 5xx series exists only after
the first 5xx), and requests shed at SHORTY_MAX_IN_FLIGHT — answered 503 before the
request log, so counted only by shorty_shed_requests_total{bound="requests"} — show as
errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.dashboards.queries import RULES, dashboards, panels, substitute

HISTOGRAM = "shorty_http_request_duration_seconds"
REDIRECT = 'namespace="shorty",component="redirect",pod="r-1",service="redirect"'
API = 'namespace="shorty",component="api",pod="a-1",service="api"'
SHED = "shorty_shed_requests_total"
MINUTES = "x90"  # samples a minute apart for 90 minutes; checked at minute 60
HEALTHY, SHEDDING = 0, 10  # redirects shed a minute, next to 100 answered 302
TOLERANCE = 1e-9


def series(shed_per_minute: int) -> list[dict[str, str]]:
    redirect = f'{REDIRECT},route="/{{code}}",method="GET",status="302"'
    api = f'{API},route="/api/v1/urls/{{code}}",method="GET",status="200"'
    return [
        {"series": f"{HISTOGRAM}_count{{{redirect}}}", "values": f"0+100{MINUTES}"},
        {"series": f'{HISTOGRAM}_bucket{{{redirect},le="0.1"}}', "values": f"0+100{MINUTES}"},
        {
            "series": f'{SHED}{{{REDIRECT},bound="requests"}}',
            "values": f"0+{shed_per_minute}{MINUTES}",
        },
        {"series": f"{HISTOGRAM}_count{{{api}}}", "values": f"0+50{MINUTES}"},
        {"series": f'{SHED}{{{API},bound="requests"}}', "values": f"0{MINUTES}"},
    ]


def query(board: str, title: str, ref: str = "A") -> str:
    """A panel's query as Grafana sends it (a 5-minute rate interval)."""
    [panel] = [p for p in panels(dashboards()[board]) if p["title"] == title]
    [target] = [t for t in panel["targets"] if t["refId"] == ref]
    return substitute(target["expr"].replace("$__rate_interval", "5m"))


def near(expr: str, value: float, found: dict[str, int]) -> dict[str, object]:
    """``expr`` evaluated as ``|expr - value| < 1e-9`` (1 or 0) for each of its series:
    ``found`` is what each series' label set must give; a series missing fails."""
    return {
        "expr": f"abs(({expr}) - {value!r}) < bool {TOLERANCE}",
        "eval_time": "60m",
        "exp_samples": [{"labels": labels, "value": hit} for labels, hit in found.items()],
    }


def checks(shed_per_minute: int) -> list[dict[str, object]]:
    failed = shed_per_minute / (100 + shed_per_minute)  # of the redirects
    ns = {'{namespace="shorty"}': 1}
    redirect, api = '{service="redirect"}', '{service="api"}'
    overview = "shorty-overview.json"
    return [
        near(query(overview, "Availability"), 1 - failed, ns),
        near(query(overview, "Error budget left"), 1 - failed / 0.001, ns),
        near(query(overview, "Error budget burn rate"), failed / 0.001, ns),
        near(query(overview, "Redirects within 100 ms"), 1, ns),  # a shed one took no time
        near(query(overview, "Errors (5xx share)"), failed, {redirect: 1, api: int(not failed)}),
        near(query(overview, "Requests"), (100 + shed_per_minute) / 60, {redirect: 1, api: 0}),
        near(
            query("shorty-redirect.json", "Redirects by status", "B"),
            shed_per_minute / 60,
            {"{}": 1},
        ),
        near(query("shorty-api.json", "5xx share"), 0, ns),
    ]


def test_healthy_and_shedding_services_show_in_the_error_and_slo_panels(
    promtool: Path, tmp_path: Path
):
    tests = [
        {
            "name": name,
            "interval": "1m",
            "input_series": series(shed),
            "promql_expr_test": checks(shed),
        }
        for name, shed in (("healthy", HEALTHY), ("shedding", SHEDDING))
    ]
    file = tmp_path / "panels_test.yaml"
    file.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(RULES / "slo.yaml"), str(RULES / "shorty.yaml")],
                "evaluation_interval": "1m",
                "tests": tests,
            },
            sort_keys=False,
        )
    )
    done = subprocess.run(
        [str(promtool), "test", "rules", str(file)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
