"""The chart's wiring, read from rendered objects: what refers to what, and whether
it is there. Each check returns the problems it finds (empty: none), so that a test
can show it on the chart and on a deliberately broken copy alike.

Pods are taken from every kind that makes them (Deployment, StatefulSet,
DaemonSet, ReplicaSet, Job, CronJob, Pod), so a new component is checked as
soon as it renders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Objects = tuple[dict[str, Any], ...] | list[dict[str, Any]]
Served = Callable[[Objects, dict[str, Any]], dict[int, set[str]]]
TEMPLATED = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# The metrics ports (services/shorty/settings.py METRICS_PORTS, the operator's --metrics-port).
METRICS_PORT_NAME = "metrics"


@dataclass(frozen=True)
class Pod:
    """The pods one object makes: its kind and name, their labels and spec."""

    kind: str
    name: str
    labels: dict[str, str]
    spec: dict[str, Any]
    claim_templates: tuple[str, ...] = ()

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.spec.get("initContainers", [])) + list(self.spec["containers"])

    @property
    def component(self) -> str:
        return self.labels.get("app.kubernetes.io/component", "")

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


def pods(objects: Objects) -> list[Pod]:
    found = []
    for obj in objects:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "Pod":
            found.append(Pod(kind, name, obj["metadata"].get("labels", {}), obj["spec"]))
            continue
        if kind == "CronJob":
            template = obj["spec"]["jobTemplate"]["spec"]["template"]
        elif kind in TEMPLATED:
            template = obj["spec"]["template"]
        else:
            continue
        claims = tuple(c["metadata"]["name"] for c in obj["spec"].get("volumeClaimTemplates", []))
        labels = template.get("metadata", {}).get("labels", {})
        found.append(Pod(kind, name, labels, template["spec"], claims))
    return found


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) applied to labels; {} selects all."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def selects_map(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """A Service's selector: a plain map, every pair present."""
    return bool(selector) and all(labels.get(k) == v for k, v in (selector or {}).items())


def container_ports(container: dict[str, Any]) -> list[dict[str, Any]]:
    return list(container.get("ports", []))


def port_of(container: dict[str, Any], port: int | str) -> dict[str, Any] | None:
    """The declared containerPort a Service targetPort or probe port means (name or number)."""
    for declared in container_ports(container):
        if port in (declared.get("name"), declared["containerPort"]):
            return declared
    return None


def names(objects: Objects, kind: str) -> set[str]:
    return {obj["metadata"]["name"] for obj in objects if obj["kind"] == kind}


def find(objects: Objects, kind: str, name: str) -> dict[str, Any] | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)


# --- Services -------------------------------------------------------------------


def service_problems(objects: Objects) -> list[str]:
    """Each Service selects pods that exist, and each targetPort is a port one of
    their containers declares."""
    problems = []
    all_pods = pods(objects)
    for service in (o for o in objects if o["kind"] == "Service"):
        name, spec = service["metadata"]["name"], service["spec"]
        selected = [pod for pod in all_pods if selects_map(spec.get("selector"), pod.labels)]
        if not selected:
            problems.append(f"Service/{name}: selector {spec.get('selector')} selects no pod")
            continue
        for port in spec["ports"]:
            target = port.get("targetPort", port["port"])
            for pod in selected:
                if not any(port_of(c, target) for c in pod.spec["containers"]):
                    problems.append(
                        f"Service/{name} port {port['port']}: targetPort {target!r} is no"
                        f" containerPort of {pod}"
                    )
    return problems


# --- ConfigMaps, Secrets, PVCs ------------------------------------------------------


def references(pod: Pod) -> Iterator[tuple[str, str, str | None]]:
    """(kind, name, key or None) of every ConfigMap, Secret and PVC the pod uses."""
    for container in pod.containers:
        for item in container.get("env", []):
            source = item.get("valueFrom", {})
            if "secretKeyRef" in source:
                yield "Secret", source["secretKeyRef"]["name"], source["secretKeyRef"]["key"]
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                yield "ConfigMap", ref["name"], ref["key"]
        for item in container.get("envFrom", []):
            if "secretRef" in item:
                yield "Secret", item["secretRef"]["name"], None
            if "configMapRef" in item:
                yield "ConfigMap", item["configMapRef"]["name"], None
    for volume in pod.spec.get("volumes", []):
        if "secret" in volume:
            yield "Secret", volume["secret"]["secretName"], None
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"], None
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], None
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                yield "Secret", source["secret"]["name"], None
            if "configMap" in source:
                yield "ConfigMap", source["configMap"]["name"], None
    for secret in pod.spec.get("imagePullSecrets", []):
        yield "Secret", secret["name"], None


def reference_problems(objects: Objects, user_provided: set[tuple[str, str]]) -> list[str]:
    """Every ConfigMap, Secret and PVC a pod uses is rendered (with the key it reads),
    or is one the values name as the user's own (existingSecret, imagePullSecrets)."""
    problems = []
    for pod in pods(objects):
        for kind, name, key in references(pod):
            if (kind, name) in user_provided:
                continue
            rendered = find(objects, kind, name)
            if rendered is None:
                problems.append(f"{pod} uses {kind}/{name}: neither rendered nor user-provided")
            elif key is not None and key not in {
                **rendered.get("data", {}),
                **rendered.get("stringData", {}),
            }:
                problems.append(f"{pod} reads key {key!r} that {kind}/{name} does not have")
        volumes = {v["name"] for v in pod.spec.get("volumes", [])} | set(pod.claim_templates)
        for container in pod.containers:
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{pod} mounts volume {mount['name']!r} it does not have")
        account = pod.spec.get("serviceAccountName")
        if account and account not in names(objects, "ServiceAccount"):
            problems.append(f"{pod} runs as ServiceAccount/{account}, which is not rendered")
    return problems


# --- Probes ----------------------------------------------------------------------


def probe_problems(objects: Objects, served: Served) -> list[str]:
    """Each httpGet probe's port is a declared containerPort of its container, and the
    path is one the program serves on that port. `served(objects, container)`: port →
    paths (tests/chart/test_wiring.py reads them from the programs' own options)."""
    problems = []
    for pod in pods(objects):
        for container in pod.containers:
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                http = container.get(kind, {}).get("httpGet")
                if http is None:
                    continue
                where = f"{pod} container {container['name']} {kind}"
                declared = port_of(container, http["port"])
                if declared is None:
                    problems.append(f"{where}: port {http['port']!r} is no containerPort")
                    continue
                paths = served(objects, container).get(declared["containerPort"], set())
                if http.get("path", "/") not in paths:
                    problems.append(
                        f"{where}: {http.get('path')} is not served on"
                        f" {declared['containerPort']} (there: {sorted(paths)})"
                    )
    return problems


# --- HPA, PDB, Ingress ---------------------------------------------------------------


def scaling_problems(objects: Objects) -> list[str]:
    """HPAs scale a rendered workload; each PDB's selector matches the pods of exactly
    one workload."""
    problems = []
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = find(objects, ref["kind"], ref["name"])
        if target is None or target["apiVersion"] != ref.get("apiVersion", target["apiVersion"]):
            problems.append(
                f"HorizontalPodAutoscaler/{hpa['metadata']['name']} scales {ref}: not rendered"
            )
    for pdb in (o for o in objects if o["kind"] == "PodDisruptionBudget"):
        matched = [pod for pod in pods(objects) if selects(pdb["spec"]["selector"], pod.labels)]
        if len(matched) != 1:
            problems.append(
                f"PodDisruptionBudget/{pdb['metadata']['name']} matches the pods of"
                f" {[str(p) for p in matched]}, not of exactly one workload"
            )
    return problems


def service_port(service: dict[str, Any], port: dict[str, Any]) -> dict[str, Any] | None:
    """The Service port an Ingress backend's port (name or number) means."""
    for declared in service["spec"]["ports"]:
        if port.get("name") == declared.get("name") or port.get("number") == declared["port"]:
            return declared
    return None


def ingress_problems(objects: Objects) -> list[str]:
    """Ingress backends name rendered Services and ports they expose, and never reach a
    metrics port."""
    problems = []
    all_pods = pods(objects)
    for ingress in (o for o in objects if o["kind"] == "Ingress"):
        spec = ingress["spec"]
        backends = [spec["defaultBackend"]] if "defaultBackend" in spec else []
        for rule in spec.get("rules", []):
            backends += [path["backend"] for path in rule.get("http", {}).get("paths", [])]
        for backend in backends:
            ref = backend["service"]
            where = f"Ingress/{ingress['metadata']['name']} → {ref['name']}:{ref['port']}"
            service = find(objects, "Service", ref["name"])
            if service is None:
                problems.append(f"{where}: no such Service")
                continue
            declared = service_port(service, ref["port"])
            if declared is None:
                problems.append(f"{where}: the Service exposes no such port")
                continue
            target = declared.get("targetPort", declared["port"])
            for pod in all_pods:
                if not selects_map(service["spec"].get("selector"), pod.labels):
                    continue
                for container in pod.spec["containers"]:
                    container_port = port_of(container, target)
                    if container_port and container_port.get("name") == METRICS_PORT_NAME:
                        problems.append(f"{where}: reaches the metrics port of {pod}")
    return problems


# --- RBAC ----------------------------------------------------------------------


def rbac_problems(objects: Objects, namespace: str) -> list[str]:
    """Each binding's role is rendered and each of its ServiceAccounts is rendered in
    the release's namespace and used by a pod; a pod bound to a role mounts its token."""
    problems = []
    all_pods = pods(objects)
    for binding in (o for o in objects if o["kind"] in {"ClusterRoleBinding", "RoleBinding"}):
        where = f"{binding['kind']}/{binding['metadata']['name']}"
        role = binding["roleRef"]
        if find(objects, role["kind"], role["name"]) is None:
            problems.append(f"{where}: roleRef {role['kind']}/{role['name']} is not rendered")
        for subject in binding.get("subjects", []):
            if subject["kind"] != "ServiceAccount":
                continue
            if subject.get("namespace") != namespace:
                problems.append(f"{where}: subject {subject['name']} not in {namespace}")
            if find(objects, "ServiceAccount", subject["name"]) is None:
                problems.append(f"{where}: ServiceAccount/{subject['name']} is not rendered")
            users = [p for p in all_pods if p.spec.get("serviceAccountName") == subject["name"]]
            if not users:
                problems.append(f"{where}: no pod runs as ServiceAccount/{subject['name']}")
            for pod in users:
                if pod.spec.get("automountServiceAccountToken") is False:
                    problems.append(f"{where}: {pod} has a role but mounts no token")
    return problems
