"""The chart's wiring on the rendered objects of every scenario: Services select pods
and target their ports, every ConfigMap/Secret/PVC a pod uses exists (or is the
user's, by the values that say so), probes hit ports and paths the programs serve,
the NetworkPolicies allow exactly docs/deploy.md's "Network flows", HPAs, PDBs and
the Ingress point at what is rendered, the operator's RBAC hangs together. Each
check is also shown failing on a broken copy of a render."""

from __future__ import annotations

import copy
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shorty.cli.serve import serve
from shorty.settings import METRICS_PORTS
from shorty.web.health import PROBE_PATHS
from shorty_operator.cli import main as operator_main
from tests.chart import wiring
from tests.chart.netpol import Endpoint, allowed, side_allows
from tests.chart.render import CHART, NAMESPACE, RELEASE, ROOT, SCENARIOS, helm, render

Flow = tuple[str, str, int, str]  # (from, to, port, protocol)


def values_of(scenario: str | None) -> dict[str, Any]:
    """values.yaml with the scenario's file merged over it, as helm does."""

    def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
        out = dict(base)
        for key, value in over.items():
            both = isinstance(value, dict) and isinstance(base.get(key), dict)
            out[key] = merge(base[key], value) if both else value
        return out

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    if scenario is None:
        return values
    return merge(values, yaml.safe_load((CHART / "ci" / scenario).read_text()) or {})


def user_provided(values: dict[str, Any]) -> set[tuple[str, str]]:
    """The objects the values document as the user's own."""
    secrets = [
        values["secrets"]["existingSecret"],
        values["externalDatabase"]["existingSecret"],
        values["externalRedis"]["existingSecret"],
        values["backup"]["s3"]["existingSecret"],
        *(item["name"] for item in values["imagePullSecrets"]),
    ]
    return {("Secret", name) for name in secrets if name}


def container_env(objects: wiring.Objects, container: dict[str, Any]) -> dict[str, str]:
    """The literal env a container gets, its envFrom ConfigMaps included."""
    env: dict[str, str] = {}
    for item in container.get("envFrom", []):
        if "configMapRef" in item:
            found = wiring.find(objects, "ConfigMap", item["configMapRef"]["name"])
            env.update((found or {}).get("data", {}))
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def kibana_served(objects: wiring.Objects) -> dict[int, set[str]]:
    """Kibana's login page, which answers without credentials: on server.port, under
    server.basePath when Kibana itself strips it (rewriteBasePath), from the kibana.yml
    the chart renders."""
    (settings,) = [
        yaml.safe_load(o["data"]["kibana.yml"])
        for o in objects
        if o["kind"] == "ConfigMap" and "kibana.yml" in o.get("data", {})
    ]
    base = settings.get("server.basePath", "") if settings.get("server.rewriteBasePath") else ""
    return {settings.get("server.port", 5601): {f"{base}/login"}}


def served(objects: wiring.Objects, container: dict[str, Any]) -> dict[int, set[str]]:
    """Port → the probe paths the program serves there, from its own options: `shorty
    serve X` (its --port; the metrics listener's /livez on --metrics-port, else
    SHORTY_METRICS_PORT, else METRICS_PORTS), `shorty-operator` (kopf's --liveness)
    and Kibana (its kibana.yml)."""
    if "/kibana/kibana:" in container["image"]:
        return kibana_served(objects)
    command = [*container.get("command", []), *container.get("args", [])]
    env = container_env(objects, container)
    if command[:2] == ["shorty", "serve"]:
        service = command[2]
        params = (
            serve.commands[service]
            .make_context(service, command[3:], resilient_parsing=True)
            .params
        )
        metrics = params["metrics_port"] or int(env.get("SHORTY_METRICS_PORT", 0))
        paths = {metrics or METRICS_PORTS[service]: {"/livez"}}
        if "port" in params:
            paths[params["port"]] = set(PROBE_PATHS)
        return paths
    if command[:1] == ["shorty-operator"]:
        params = operator_main.make_context(
            "shorty-operator", command[1:], resilient_parsing=True
        ).params
        liveness = urlsplit(env.get("SHORTY_OPERATOR_LIVENESS", params["liveness"]))
        return {liveness.port or 80: {liveness.path}} if liveness.port else {}
    return {}


@pytest.fixture(params=SCENARIOS, ids=str)
def scenario(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


# --- every scenario wired -----------------------------------------------------------


def test_services_select_pods_and_target_declared_ports(scenario):
    assert wiring.service_problems(render(scenario)) == []


def test_configmaps_secrets_and_claims_used_are_rendered_or_the_users(scenario):
    objects = render(scenario)
    assert wiring.reference_problems(objects, user_provided(values_of(scenario))) == []


def test_probes_hit_declared_ports_and_served_paths(scenario):
    objects = render(scenario)
    assert wiring.probe_problems(objects, served) == []
    probed = [c for p in wiring.pods(objects) for c in p.containers if "livenessProbe" in c]
    assert probed  # the check saw probes at all


def test_hpas_and_pdbs_point_at_rendered_workloads(scenario):
    assert wiring.scaling_problems(render(scenario)) == []


def test_ingress_backends_are_rendered_service_ports_never_metrics(scenario):
    assert wiring.ingress_problems(render(scenario)) == []


def test_operator_rbac_and_service_account_refer_to_each_other(scenario):
    objects = render(scenario)
    assert wiring.rbac_problems(objects, NAMESPACE) == []
    operators = [p for p in wiring.pods(objects) if p.component == "operator"]
    if not values_of(scenario)["operator"]["enabled"]:
        assert operators == []
        return
    (operator,) = operators
    account = operator.spec["serviceAccountName"]
    (binding,) = [
        o
        for o in objects
        if o["kind"] == "ClusterRoleBinding"
        and any(s["name"] == account for s in o.get("subjects", []))
    ]
    role = wiring.find(objects, "ClusterRole", binding["roleRef"]["name"])
    assert role is not None
    # The peering it joins is rendered, and the only one its role may patch.
    args = operator.spec["containers"][0]["args"]
    peering = args[args.index("--peering") + 1]
    assert wiring.find(objects, "ClusterKopfPeering", peering) is not None
    patched = [r for r in role["rules"] if "resourceNames" in r]
    assert [r["resourceNames"] for r in patched] == [[peering]]


# --- NetworkPolicies --------------------------------------------------------------

POD_NET = ipaddress.ip_network("10.244.0.0/16")


def peer_endpoint(name: str, peer: dict[str, Any], fallback_ip: str) -> Endpoint:
    """An endpoint a values peer (namespaceSelector/podSelector or ipBlock) matches."""
    if "ipBlock" in peer:
        return Endpoint(name, ip=str(ipaddress.ip_network(peer["ipBlock"]["cidr"])[5]))
    if "podSelector" in peer or "namespaceSelector" in peer:
        namespace_labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
        namespace = namespace_labels.get("kubernetes.io/metadata.name", NAMESPACE)
        namespace_labels = namespace_labels or {"kubernetes.io/metadata.name": namespace}
        labels = peer.get("podSelector", {}).get("matchLabels", {})
        return Endpoint(name, namespace, labels, namespace_labels, fallback_ip)
    return Endpoint(name, ip=fallback_ip)


def release_endpoints(objects: wiring.Objects) -> dict[str, tuple[Endpoint, list[tuple[int, str]]]]:
    """component → (its pods as an endpoint, the (port, protocol) they declare)."""
    found = {}
    for index, pod in enumerate(wiring.pods(objects)):
        declared = [p for c in pod.spec["containers"] for p in wiring.container_ports(c)]
        named = {p["name"]: (p["containerPort"], p.get("protocol", "TCP")) for p in declared}
        ns_labels = {"kubernetes.io/metadata.name": NAMESPACE}
        ip = str(POD_NET[256 + index])
        endpoint = Endpoint(pod.component, NAMESPACE, pod.labels, ns_labels, ip, named)
        ports = [(p["containerPort"], p.get("protocol", "TCP")) for p in declared]
        found[pod.component] = (endpoint, ports)
    return found


def outside_endpoints(values: dict[str, Any]) -> dict[str, tuple[Endpoint, list[tuple[int, str]]]]:
    """What the release talks to beyond its pods, each with the ports it listens on."""
    np = values["networkPolicy"]
    found = {
        "dns": (peer_endpoint("dns", np["dns"], "10.244.0.10"), [(53, "UDP"), (53, "TCP")]),
        # The API server's endpoint, as CNIs match egress after the Service address
        # (10.96.0.1) is translated; production-like narrows the policy to it.
        "kube-api": (Endpoint("kube-api", ip="172.18.0.2"), [(443, "TCP"), (6443, "TCP")]),
    }
    if not values["postgresql"]["enabled"]:
        peer = (np["externalDatabase"] or [{}])[0]
        port = values["externalDatabase"]["port"]
        found["external-database"] = (
            peer_endpoint("external-database", peer, "192.0.2.20"),
            [(port, "TCP")],
        )
    if values["backup"]["enabled"] and values["backup"]["s3"]["enabled"]:
        found["s3"] = (
            peer_endpoint("s3", np["backupS3"]["peers"][0], "192.0.2.40"),
            [(np["backupS3"]["port"], "TCP")],
        )
    if values["otel"]["endpoint"]:
        found["otel-collector"] = (
            peer_endpoint("otel-collector", np["otelCollector"]["peers"][0], "192.0.2.50"),
            [(np["otelCollector"]["port"], "TCP")],
        )
    if not values["redis"]["enabled"]:
        peer = (np["externalRedis"] or [{}])[0]
        found["external-redis"] = (
            peer_endpoint("external-redis", peer, "192.0.2.30"),
            [(np["externalRedisPort"], "TCP")],
        )
    return found


def sources(values: dict[str, Any]) -> list[Endpoint]:
    """Pods beyond the release that might try to reach it."""
    np, prometheus = values["networkPolicy"], values["monitoring"]["prometheus"]
    return [
        peer_endpoint("ingress-controller", np["ingressController"], "10.244.9.1"),
        peer_endpoint("prometheus", prometheus, "10.244.9.2"),
        Endpoint("stranger", NAMESPACE, {"app": "other"}, {}, "10.244.9.3"),
        Endpoint("outsider", "elsewhere", {"app": "other"}, {}, "10.244.9.4"),
    ]


def allowed_flows(objects: wiring.Objects, values: dict[str, Any]) -> set[Flow]:
    """Every (from, to, port, protocol) the policies let through, over the release's
    pods and what they talk to. The far side of a destination beyond the release
    (DNS, the API server, an external database) is not the chart's: egress only."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    inside = release_endpoints(objects)
    outside = outside_endpoints(values)
    flows = set()
    for src in [endpoint for endpoint, _ in inside.values()] + sources(values):
        for name, (dst, ports) in {**inside, **outside}.items():
            for port, protocol in ports:
                if name in inside:
                    ok = allowed(policies, NAMESPACE, src, dst, port, protocol)
                else:
                    ok = src.name in inside and side_allows(
                        policies, NAMESPACE, src, dst, "Egress", port, protocol, dst
                    )
                if ok and src.name != name:
                    flows.add((src.name, name, port, protocol))
    return flows


DOC_PEERS = {
    "the Ingress controller": ["ingress-controller"],
    "the operator": ["operator"],
    "the Kubernetes API": ["kube-api"],
    "the cluster DNS": ["dns"],
    "the `helm test` pod": ["test"],
    "Prometheus": ["prometheus"],
    "the S3 endpoint": ["s3"],
    "the OTLP collector": ["otel-collector"],
    **{name: [name] for name in ("api", "redirect", "worker", "migrations", "operator", "backup")},
    "filebeat": ["filebeat"],
    "logstash": ["logstash"],
    "Elasticsearch": ["elasticsearch"],
    "Kibana": ["kibana"],
    "the ELK setup Job": ["elk-setup"],
}


def documented_flows(objects: wiring.Objects, values: dict[str, Any]) -> set[Flow]:
    """docs/deploy.md's "Network flows" table, read for this scenario's values."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    section = text.split("## Network flows", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    inside = release_endpoints(objects)
    peers = {
        **DOC_PEERS,
        "every pod of the release": sorted(inside),
        "PostgreSQL": ["postgresql" if values["postgresql"]["enabled"] else "external-database"],
        "Redis": ["redis" if values["redis"]["enabled"] else "external-redis"],
    }
    external_ports = {
        "external-database": values["externalDatabase"]["port"],
        "external-redis": values["networkPolicy"]["externalRedisPort"],
        "s3": values["networkPolicy"]["backupS3"]["port"],
        "otel-collector": values["networkPolicy"]["otelCollector"]["port"],
    }

    def cell(text: str) -> list[str]:
        text = re.sub(r"\s*\([^)]*\)", "", text).strip()
        text = text.removeprefix("metrics ports of ")
        return [item for part in text.split(", ") for item in peers[part]]

    flows: set[Flow] = set()
    for row in rows[1:]:  # the header first
        source, destination, port_cell = (c.strip() for c in row.strip("|").split("|"))
        if source.startswith("Prometheus") and not values["monitoring"]["enabled"]:
            continue
        if "liveView.enabled" in row and not values["liveView"]["enabled"]:
            continue
        if destination.startswith("the S3 endpoint") and not values["backup"]["s3"]["enabled"]:
            continue
        if destination.startswith("the OTLP collector") and not values["otel"]["endpoint"]:
            continue
        kibana_ingress = values["elk"]["kibana"]["ingress"]["enabled"]
        if "elk.kibana.ingress.enabled" in row and not kibana_ingress:
            continue
        srcs, dsts = cell(source), cell(destination)
        ports = re.sub(r"\s*\([^)]*\)", "", port_cell).replace("`", "").split(", ")
        pairs = list(zip(dsts, ports, strict=True)) if len(dsts) == len(ports) > 1 else []
        pairs = pairs or [(d, p) for d in dsts for p in ports]
        for dst, port in pairs:
            for src in srcs:
                if {src, dst} & OPTIONAL_PODS - set(inside):
                    continue  # a component this scenario does not render (the operator)
                if src == dst:
                    continue  # between the pods of one component: not told apart here
                number, _, protocols = port.partition(" ")
                for protocol in (protocols or "TCP").split("/"):
                    if dst in external_ports:
                        flows.add((src, dst, external_ports[dst], protocol))
                    elif number.isdigit():
                        flows.add((src, dst, int(number), protocol))
                    else:  # a named port
                        flows.add((src, dst, inside[dst][0].named_ports[number][0], protocol))
    return flows


SHORTY_PODS = {"api", "redirect", "worker", "migrations", "operator", "backup", "test"}
ELK_PODS = {"filebeat", "logstash", "elasticsearch", "kibana", "elk-setup"}
OPTIONAL_PODS = SHORTY_PODS | ELK_PODS


def test_network_policies_allow_exactly_the_documented_flows(scenario):
    objects, values = render(scenario), values_of(scenario)
    assert allowed_flows(objects, values) == documented_flows(objects, values)


# --- each check fails on a broken render ---------------------------------------------


def obj(objects: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)]
    return found


def container(objects: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    return obj(objects, kind, suffix)["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]


def retarget_service(objects: list[dict[str, Any]]) -> None:
    obj(objects, "Service", "-api")["spec"]["ports"][0]["targetPort"] = "metric"


def drop_pod_label(objects: list[dict[str, Any]]) -> None:
    labels = obj(objects, "Deployment", "-redirect")["spec"]["template"]["metadata"]["labels"]
    del labels["app.kubernetes.io/component"]


def rename_secret_ref(objects: list[dict[str, Any]]) -> None:
    for item in container(objects, "Deployment", "-worker")["env"]:
        if "valueFrom" in item and "secretKeyRef" in item["valueFrom"]:
            item["valueFrom"]["secretKeyRef"]["name"] = "demo-shorty-typo"


def wrong_secret_key(objects: list[dict[str, Any]]) -> None:
    env = container(objects, "Deployment", "-api")["env"]
    (jwt,) = [item for item in env if item["name"] == "SHORTY_JWT_SECRET"]
    jwt["valueFrom"]["secretKeyRef"]["key"] = "jwt"


def rename_configmap_ref(objects: list[dict[str, Any]]) -> None:
    container(objects, "Deployment", "-api")["envFrom"][0]["configMapRef"]["name"] = "other"


def mount_missing_volume(objects: list[dict[str, Any]]) -> None:
    container(objects, "Deployment", "-api")["volumeMounts"].append(
        {"name": "x", "mountPath": "/x"}
    )


def probe_wrong_port(objects: list[dict[str, Any]]) -> None:
    container(objects, "Deployment", "-api")["livenessProbe"]["httpGet"]["port"] = 9101


def probe_wrong_path(objects: list[dict[str, Any]]) -> None:
    # /readyz is served on the HTTP port, not by the metrics listener.
    container(objects, "Deployment", "-worker")["livenessProbe"]["httpGet"]["path"] = "/readyz"


def operator_probe_path(objects: list[dict[str, Any]]) -> None:
    container(objects, "Deployment", "-operator")["livenessProbe"]["httpGet"]["path"] = "/livez"


def metrics_port_moved(objects: list[dict[str, Any]]) -> None:
    # SHORTY_METRICS_PORT moves the listener; the declared port and probe stay behind.
    obj(objects, "ConfigMap", "demo-shorty")["data"]["SHORTY_METRICS_PORT"] = "9200"


def hpa_wrong_target(objects: list[dict[str, Any]]) -> None:
    obj(objects, "HorizontalPodAutoscaler", "-api")["spec"]["scaleTargetRef"]["name"] = "api"


def pdb_wide_selector(objects: list[dict[str, Any]]) -> None:
    del obj(objects, "PodDisruptionBudget", "-api")["spec"]["selector"]["matchLabels"][
        "app.kubernetes.io/component"
    ]


def ingress_wrong_service(objects: list[dict[str, Any]]) -> None:
    ingress = obj(objects, "Ingress", "demo-shorty")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "demo-api"


def ingress_to_metrics(objects: list[dict[str, Any]]) -> None:
    service = obj(objects, "Service", "-redirect")
    service["spec"]["ports"].append({"name": "metrics", "port": 9101, "targetPort": "metrics"})
    ingress = obj(objects, "Ingress", "demo-shorty")
    ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = {
        "name": "metrics"
    }


def binding_wrong_role(objects: list[dict[str, Any]]) -> None:
    obj(objects, "ClusterRoleBinding", "-operator")["roleRef"]["name"] = "cluster-admin"


def operator_default_account(objects: list[dict[str, Any]]) -> None:
    del obj(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["serviceAccountName"]


def checks(objects: list[dict[str, Any]]) -> list[str]:
    return [
        *wiring.service_problems(objects),
        *wiring.reference_problems(
            objects, user_provided(values_of("production-like-values.yaml"))
        ),
        *wiring.probe_problems(objects, served),
        *wiring.scaling_problems(objects),
        *wiring.ingress_problems(objects),
        *wiring.rbac_problems(objects, NAMESPACE),
    ]


BREAKAGES = [
    (retarget_service, "Service/demo-shorty-api port 8000: targetPort 'metric'"),
    (drop_pod_label, "Service/demo-shorty-redirect: selector"),
    (rename_secret_ref, "uses Secret/demo-shorty-typo: neither rendered nor user-provided"),
    (wrong_secret_key, "reads key 'jwt' that Secret/demo-shorty does not have"),
    (rename_configmap_ref, "uses ConfigMap/other"),
    (mount_missing_volume, "mounts volume 'x'"),
    (probe_wrong_port, "livenessProbe: port 9101 is no containerPort"),
    (probe_wrong_path, "worker livenessProbe: /readyz is not served on 9102"),
    (operator_probe_path, "operator livenessProbe: /livez is not served on 8081"),
    (metrics_port_moved, "api livenessProbe: /livez is not served on 9100"),
    (hpa_wrong_target, "HorizontalPodAutoscaler/demo-shorty-api scales"),
    (pdb_wide_selector, "PodDisruptionBudget/demo-shorty-api matches the pods of"),
    (ingress_wrong_service, "→ demo-api:{'name': 'http'}: no such Service"),
    (ingress_to_metrics, "reaches the metrics port of Deployment/demo-shorty-redirect"),
    (binding_wrong_role, "roleRef ClusterRole/cluster-admin is not rendered"),
    (operator_default_account, "no pod runs as ServiceAccount/demo-shorty-operator"),
]


@pytest.mark.parametrize(
    ("breakage", "problem"), BREAKAGES, ids=lambda b: getattr(b, "__name__", "")
)
def test_each_check_reports_a_broken_render(breakage, problem):
    # production-like has every kind (HPAs, TLS Ingress on two hosts, the operator).
    objects = copy.deepcopy(list(render("production-like-values.yaml")))
    assert not [p for p in checks(objects) if problem in p]
    breakage(objects)
    found = checks(objects)
    assert [p for p in found if problem in p], found


@pytest.mark.parametrize("key", ["METRICS_PORT", "metrics_host"])
def test_config_cannot_move_the_metrics_listener_off_its_wiring(key):
    # SHORTY_METRICS_PORT would move /livez off the probed, declared, allowed port
    # (metrics_port_moved above shows the probe check catching it): refused instead.
    result = helm("template", RELEASE, str(CHART), "--set", f"config.{key}=9200", check=False)
    assert result.returncode != 0
    assert f"invalid propertyName '{key}'" in result.stderr


def open_api_ports(objects: list[dict[str, Any]]) -> None:
    del obj(objects, "NetworkPolicy", "-api-ingress")["spec"]["ingress"][0]["ports"]


def drop_dns(objects: list[dict[str, Any]]) -> None:
    objects.remove(obj(objects, "NetworkPolicy", "-dns"))


def widen_redis_clients(objects: list[dict[str, Any]]) -> None:
    selector = obj(objects, "NetworkPolicy", "-redis")["spec"]["ingress"][0]["from"][0]
    selector["podSelector"]["matchExpressions"][0]["values"].append("migrations")
    selector = obj(objects, "NetworkPolicy", "-redis-clients")["spec"]["podSelector"]
    selector["matchExpressions"][0]["values"].append("migrations")


@pytest.mark.parametrize(
    ("breakage", "extra", "missing"),
    [
        (open_api_ports, ("ingress-controller", "api", 9100, "TCP"), None),
        (drop_dns, None, ("api", "dns", 53, "UDP")),
        (widen_redis_clients, ("migrations", "redis", 6379, "TCP"), None),
    ],
    ids=["ingress-controller-to-metrics", "no-dns", "migrations-to-redis"],
)
def test_flow_check_reports_a_broken_policy(breakage, extra, missing):
    scenario = "production-like-values.yaml"
    objects, values = copy.deepcopy(list(render(scenario))), values_of(scenario)
    documented = documented_flows(objects, values)
    breakage(objects)
    flows = allowed_flows(objects, values)
    assert flows != documented
    assert extra is None or extra in flows - documented
    assert missing is None or missing in documented - flows
