"""The chart's monitoring: a PodMonitor per component where the Prometheus Operator's
API is served (or forced), each picking exactly its component's pods on their metrics
port and labelling every series with the component; the PrometheusRule carrying
dashboards/rules/*.yaml as they are; the dashboards as sidecar ConfigMaps, byte for
byte. PodMonitor and PrometheusRule are checked against the Prometheus Operator's own
CRD models (npm @kubernetes-models/prometheus-operator): their JSON schemas at run
time, their TypeScript types (no unknown field) with tsc."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import (
    CHART,
    PROMETHEUS_API,
    ROOT,
    SCENARIOS,
    helm,
    named,
    of_kind,
    render,
)
from tests.elk import node

DASHBOARDS = ROOT / "dashboards"
COMPONENTS = ["api", "redirect", "worker", "operator"]
COMPONENT_LABEL = "app.kubernetes.io/component"
ON = ("monitoring.enabled=true",)
Objects = tuple[dict[str, Any], ...]


def monitoring_objects(objects: Objects) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["apiVersion"] == PROMETHEUS_API]


def test_nothing_without_the_api_or_without_monitoring():
    # production-like turns monitoring on: without the API, only its NetworkPolicy.
    assert monitoring_objects(render("production-like-values.yaml")) == []
    assert monitoring_objects(render(None, api_versions=(PROMETHEUS_API,))) == []
    assert not [o for o in render(None) if o["kind"] == "ConfigMap" and "dashboard" in str(o)]


def test_a_value_forces_them_without_the_api():
    forced = render(None, sets=(*ON, "monitoring.forcePrometheusOperator=true"))
    assert len(of_kind(forced, "PodMonitor")) == 4
    assert len(of_kind(forced, "PrometheusRule")) == 1


def pods_by_component(objects: Objects) -> dict[str, dict[str, Any]]:
    """component → the pod template of its Deployment."""
    return {
        obj["metadata"]["labels"][COMPONENT_LABEL]: obj["spec"]["template"]
        for obj in of_kind(objects, "Deployment")
    }


@pytest.mark.parametrize("scenario", [None, "operator-off-values.yaml"], ids=str)
def test_a_podmonitor_per_component_picks_its_pods_metrics_port(scenario):
    objects = render(scenario, api_versions=(PROMETHEUS_API,), sets=ON)
    pods = pods_by_component(objects)
    wanted = [c for c in COMPONENTS if c in pods]
    assert ("operator" in wanted) == (scenario is None)
    monitors = of_kind(objects, "PodMonitor")
    assert sorted(m["metadata"]["name"] for m in monitors) == sorted(
        f"demo-shorty-{c}" for c in wanted
    )
    for monitor in monitors:
        spec = monitor["spec"]
        selector = spec["selector"]["matchLabels"]
        assert set(spec) == {"selector", "podMetricsEndpoints"}  # this namespace only
        picked = [
            component
            for component, template in pods.items()
            if selector.items() <= template["metadata"]["labels"].items()
        ]
        [component] = picked
        assert monitor["metadata"]["name"] == f"demo-shorty-{component}"
        [endpoint] = spec["podMetricsEndpoints"]
        ports = {
            port["name"]: port["containerPort"]
            for container in pods[component]["spec"]["containers"]
            for port in container.get("ports", [])
        }
        assert endpoint["port"] in ports, (component, ports)
        assert endpoint["path"] == "/metrics"
        [relabel] = endpoint["relabelings"]
        # Prometheus' name for the pod label app.kubernetes.io/component.
        source = "__meta_kubernetes_pod_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", COMPONENT_LABEL)
        assert relabel == {"sourceLabels": [source], "targetLabel": "component"}
        assert pods[component]["metadata"]["labels"][COMPONENT_LABEL] == component


def test_the_metrics_ports_are_on_no_service_but_the_live_views():
    """Prometheus scrapes the pods; the only Services on a metrics port are the live
    view's headless ones, which no Ingress routes to (test_config)."""
    objects = render(None, api_versions=(PROMETHEUS_API,), sets=ON)
    on_metrics = {
        service["metadata"]["name"]
        for service in of_kind(objects, "Service")
        if any(port["targetPort"] == "metrics" for port in service["spec"]["ports"])
    }
    assert on_metrics == {f"demo-shorty-{c}-metrics" for c in ("api", "redirect", "worker")}
    for service in of_kind(objects, "Service"):
        if service["metadata"]["name"] in on_metrics:
            assert service["spec"]["clusterIP"] == "None"


def test_podmonitor_settings_come_from_the_values():
    sets = (
        *ON,
        "monitoring.podMonitor.interval=15s",
        "monitoring.podMonitor.scrapeTimeout=5s",
        "monitoring.podMonitor.labels.release=kps",
        "monitoring.rules.labels.release=kps",
    )
    objects = render(None, api_versions=(PROMETHEUS_API,), sets=sets)
    for monitor in of_kind(objects, "PodMonitor"):
        [endpoint] = monitor["spec"]["podMetricsEndpoints"]
        assert (endpoint["interval"], endpoint["scrapeTimeout"]) == ("15s", "5s")
        assert monitor["metadata"]["labels"]["release"] == "kps"
    assert named(objects, "PrometheusRule", "demo-shorty")["metadata"]["labels"]["release"] == "kps"


def test_the_prometheusrule_carries_the_rule_files_as_they_are():
    objects = render(None, api_versions=(PROMETHEUS_API,), sets=ON)
    rule = named(objects, "PrometheusRule", "demo-shorty")
    files = sorted((DASHBOARDS / "rules").glob("*.yaml"))
    assert files
    groups = [group for path in files for group in yaml.safe_load(path.read_text())["groups"]]
    assert rule["spec"] == {"groups": groups}
    off = render(None, api_versions=(PROMETHEUS_API,), sets=(*ON, "monitoring.rules.enabled=false"))
    assert of_kind(off, "PrometheusRule") == []
    assert len(of_kind(off, "PodMonitor")) == 4


def test_the_runbook_links_point_where_the_value_says():
    page = "https://wiki.example.com/shorty/runbooks"
    objects = render(
        None, api_versions=(PROMETHEUS_API,), sets=(*ON, f"monitoring.rules.runbookUrl={page}")
    )
    alerts = [
        rule
        for group in named(objects, "PrometheusRule", "demo-shorty")["spec"]["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert alerts
    for alert in alerts:
        assert alert["annotations"]["runbook_url"] == f"{page}#{alert['alert'].lower()}"


def test_the_dashboards_are_sidecar_configmaps_byte_for_byte():
    sets = (
        "monitoring.dashboards.enabled=true",
        "monitoring.dashboards.annotations.grafana_folder=Shorty",
    )
    objects = render(None, sets=sets)
    maps = [o for o in of_kind(objects, "ConfigMap") if "-dashboard-" in o["metadata"]["name"]]
    files = {path.name: path.read_text() for path in (DASHBOARDS / "grafana").glob("*.json")}
    assert files
    assert sorted(key for cm in maps for key in cm["data"]) == sorted(files)
    for cm in maps:
        [(name, text)] = cm["data"].items()
        assert text == files[name]
        assert cm["metadata"]["name"] == "demo-shorty-dashboard-" + name.removesuffix(
            ".json"
        ).removeprefix("shorty-")
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Shorty"}
        assert len(json.dumps(cm)) < 1 << 20  # a ConfigMap holds at most 1 MiB
    relabelled = render(
        None,
        sets=(
            "monitoring.dashboards.enabled=true",
            "monitoring.dashboards.labels.grafana_dashboard=null",
            "monitoring.dashboards.labels.my-dashboards=yes",
        ),
    )
    for cm in [
        o for o in of_kind(relabelled, "ConfigMap") if "-dashboard-" in o["metadata"]["name"]
    ]:
        assert cm["metadata"]["labels"]["my-dashboards"] == "yes"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]


# ---- against the Prometheus Operator's CRD models ----

MODELS = "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"
VALIDATE = f"""\
import {{ readFileSync }} from "node:fs";
import {{ PodMonitor }} from "{MODELS}/PodMonitor";
import {{ PrometheusRule }} from "{MODELS}/PrometheusRule";
const models = {{ PodMonitor, PrometheusRule }};
const errors = [];
for (const [label, obj] of JSON.parse(readFileSync(process.argv[2], "utf8"))) {{
  try {{ new models[obj.kind](obj).validate(); }}
  catch (error) {{ errors.push(`${{label}}: ${{error.message}}`); }}
}}
process.stdout.write(JSON.stringify(errors));
"""


def every_monitoring_object() -> list[tuple[str, dict[str, Any]]]:
    """(scenario/kind/name, object) of every scenario rendered with the API, monitoring
    and its dashboards on."""
    found = []
    for scenario in SCENARIOS:
        for obj in monitoring_objects(render(scenario, api_versions=(PROMETHEUS_API,), sets=ON)):
            found.append((f"{scenario}/{obj['kind']}/{obj['metadata']['name']}", obj))
    return found


def broken_copies() -> dict[str, tuple[dict[str, Any], str]]:
    """Mistakes the checks must catch: (object, what the schema or tsc says)."""
    objects = dict(every_monitoring_object())
    monitor = next(o for label, o in objects.items() if "PodMonitor" in label)
    rule = next(o for label, o in objects.items() if "PrometheusRule" in label)

    def copy(obj: dict[str, Any]) -> dict[str, Any]:
        return json.loads(json.dumps(obj))

    bad_action, bad_interval, unknown_key, misplaced = (
        copy(monitor),
        copy(monitor),
        copy(monitor),
        copy(rule),
    )
    bad_action["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"] = "rename"
    bad_interval["spec"]["podMetricsEndpoints"][0]["interval"] = "30 seconds"
    unknown_key["spec"]["podMetricsEndpoints"][0]["relabellings"] = []
    misplaced["spec"]["groups"][0]["rules"][0]["runbook_url"] = "https://example.org"
    return {
        "bad-action": (bad_action, "must be equal to one of the allowed values"),
        "bad-interval": (bad_interval, "must match pattern"),
        "unknown-key": (unknown_key, "'\"relabellings\"' does not exist"),
        "misplaced-annotation": (misplaced, "'\"runbook_url\"' does not exist"),
    }


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    node.install(node.DASHBOARDS)
    folder = tmp_path_factory.mktemp("prometheus-operator")
    (folder / "node_modules").symlink_to(node.DASHBOARDS / "node_modules", target_is_directory=True)
    return folder


def schema_errors(folder: Path, objects: list[tuple[str, dict[str, Any]]]) -> list[str]:
    script, data = folder / "validate.mjs", folder / "objects.json"
    script.write_text(VALIDATE)
    data.write_text(json.dumps(objects))
    done = node.run(str(script), str(data), folder=node.DASHBOARDS)
    assert done.returncode == 0, done.stderr
    errors: list[str] = json.loads(done.stdout)
    return errors


def type_errors(folder: Path, objects: list[tuple[str, dict[str, Any]]]) -> dict[str, list[str]]:
    """Each object as a const of its model's interface: tsc's errors by label."""
    lines = [
        f'import type {{ IPodMonitor }} from "{MODELS}/PodMonitor";',
        f'import type {{ IPrometheusRule }} from "{MODELS}/PrometheusRule";',
    ]
    consts = {}
    for index, (label, obj) in enumerate(objects):
        consts[f"object{index}"] = label
        lines.append(f"export const object{index}: I{obj['kind']} = {json.dumps(obj)};")
    source = folder / "objects.ts"
    source.write_text("\n".join(lines) + "\n")
    line_of = {n + 3: const for n, const in enumerate(consts)}  # after the two imports
    errors: dict[str, list[str]] = {}
    for _, line, error in node.tsc([source], folder=node.DASHBOARDS):
        errors.setdefault(consts[line_of[line]], []).append(error)
    return errors


def test_every_monitoring_object_fits_the_prometheus_operators_models(models: Path):
    objects = every_monitoring_object()
    assert {obj["kind"] for _, obj in objects} == {"PodMonitor", "PrometheusRule"}
    broken = broken_copies()
    checked = objects + [(label, obj) for label, (obj, _) in broken.items()]
    found_schema = schema_errors(models, checked)
    found_types = type_errors(models, checked)
    good = {label for label, _ in objects}
    assert not [e for e in found_schema if e.split(": ")[0] in good], found_schema
    assert not good & found_types.keys(), {k: found_types[k] for k in good & found_types.keys()}
    for label, (_, says) in broken.items():
        said = [e for e in found_schema if e.startswith(f"{label}: ")] + found_types.get(label, [])
        assert any(says in error for error in said), f"{label}: {said}"


def test_the_link_to_dashboards_resolves():
    link = CHART / "dashboards"
    assert link.is_symlink()
    assert link.resolve() == DASHBOARDS


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("monitoring.dashboards.enable=true", "additional properties 'enable' not allowed"),
        ("monitoring.podMonitor.interval=30", "got number, want string"),
        ("monitoring.podMonitor.interval=30sec", "does not match pattern"),
        ("monitoring.rules.runbookUrl=runbooks.md", "does not match pattern"),
    ],
)
def test_the_values_schema_rejects_monitoring_typos(setting: str, message: str):
    result = helm("template", "demo", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
