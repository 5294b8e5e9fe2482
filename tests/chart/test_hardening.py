"""What the chart promises about its pods, read from the rendered objects of every
scenario: Shorty's pods meet Pod Security Standard "restricted", no `latest` image,
resources on every container, a token only for the operator, the right probes."""

from __future__ import annotations

import pytest

from tests.chart.render import (
    SCENARIOS,
    SHORTY_COMPONENTS,
    component,
    env_of,
    named,
    of_kind,
    pod_specs,
    render,
)

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod["containers"]]


# Backups on, with the restore Job: the backup component's two pods.
WITH_RESTORE = (
    "backup.enabled=true",
    "backup.restore.enabled=true",
    "backup.restore.file=shorty-20261206T031700Z.dump",
)
# Every scenario, and the defaults with the restore Job.
RENDERS = [*((scenario, ()) for scenario in SCENARIOS), (None, WITH_RESTORE)]


@pytest.mark.parametrize(("scenario", "sets"), RENDERS, ids=str)
def test_shortys_pods_are_restricted(scenario, sets):
    objects = render(scenario, sets=sets)
    pods = [(name, pod) for name, pod in pod_specs(objects) if name in SHORTY_COMPONENTS]
    expected = {"api", "redirect", "worker", "migrations", "test"}
    if of_kind(objects, "CronJob"):
        expected.add("backup")
    assert {name for name, _ in pods} >= expected
    if sets == WITH_RESTORE:
        assert [name for name, _ in pods].count("backup") == 2  # CronJob and restore Job
    for name, pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not pod.get("hostNetwork"), name
        assert not pod.get("hostPID"), name
        tmp = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
        for container in containers(pod):
            assert container["securityContext"] == RESTRICTED_CONTAINER, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") in tmp, f"{name}: /tmp is no emptyDir"  # noqa: S108


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_every_pod_runs_without_privilege(scenario):
    """PostgreSQL, Redis and the ELK stack too: non-root, no escalation, read-only
    root, RuntimeDefault. Filebeat alone runs as root, to read the kubelet's root-owned
    log files, with every capability dropped (tests/chart/test_elk.py)."""
    for name, pod in pod_specs(render(scenario)):
        assert pod["securityContext"]["runAsNonRoot"] is (name != "filebeat"), name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not pod.get("hostNetwork"), name
        assert not pod.get("hostPID"), name
        assert not pod.get("hostIPC"), name
        for container in containers(pod):
            assert container["securityContext"] == RESTRICTED_CONTAINER, name


@pytest.mark.parametrize(("scenario", "sets"), RENDERS, ids=str)
def test_images_are_pinned_and_resources_set_everywhere(scenario, sets):
    for name, pod in pod_specs(render(scenario, sets=sets)):
        for container in containers(pod):
            image = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository, f"{name}: {image} has no tag"
            assert "/" not in tag, f"{name}: {image} has no tag"
            assert tag != "latest", name
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), name
            assert "memory" in resources["limits"], name


def test_shortys_image_tag_is_the_app_version_by_default():
    (api,) = [pod for name, pod in pod_specs(render(None)) if name == "api"]
    assert api["containers"][0]["image"] == "ghcr.io/shorty-dev/shorty:0.1.0"


@pytest.mark.parametrize(("scenario", "sets"), RENDERS, ids=str)
def test_only_the_operator_and_filebeat_get_a_service_account_token(scenario, sets):
    """Filebeat's add_kubernetes_metadata reads pods, namespaces and nodes with it."""
    objects = render(scenario, sets=sets)
    for name, pod in pod_specs(objects):
        assert pod["automountServiceAccountToken"] is (name in {"operator", "filebeat"}), name
    for account in of_kind(objects, "ServiceAccount"):
        if component(account) not in {"operator", "filebeat"}:
            assert account["automountServiceAccountToken"] is False


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_probes_ask_the_right_ports_and_paths(scenario):
    """/readyz on the HTTP port; /livez on the metrics port, answered off the event
    loop (docs/resilience.md "Liveness"); the operator's /healthz on 8081."""
    expected = {
        "api": ("http", 8000, "metrics", 9100),
        "redirect": ("http", 8080, "metrics", 9101),
        "worker": (None, None, "metrics", 9102),
    }
    for name, pod in pod_specs(render(scenario)):
        (container,) = pod["containers"]
        ports = {port["name"]: port["containerPort"] for port in container.get("ports", [])}
        if name in expected:
            http, http_port, metrics, metrics_port = expected[name]
            assert ports.get(metrics) == metrics_port
            for probe in ("startupProbe", "livenessProbe"):
                assert container[probe]["httpGet"] == {"path": "/livez", "port": "metrics"}
            if http:
                assert ports[http] == http_port
                assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
            else:
                assert "readinessProbe" not in container
            assert pod["terminationGracePeriodSeconds"] == 30
        elif name == "operator":
            assert ports == {"health": 8081, "metrics": 9090}
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
            assert "http://0.0.0.0:8081/healthz" in container["args"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_rollouts_never_go_below_the_replica_count(scenario):
    objects = render(scenario)
    for deployment in of_kind(objects, "Deployment"):
        strategy = deployment["spec"]["strategy"]
        claims = [
            volume
            for volume in deployment["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in volume
        ]
        if component(deployment) == "operator" or claims:
            # One operator at a time; a ReadWriteOnce claim (Logstash's dead-letter
            # queue) cannot be attached to a second pod elsewhere.
            assert strategy == {"type": "Recreate"}
            assert deployment["spec"]["replicas"] == 1
        else:
            assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_production_like_autoscales_three_services_from_three_replicas():
    objects = render("production-like-values.yaml")
    hpas = {
        hpa["metadata"]["name"]: hpa["spec"] for hpa in of_kind(objects, "HorizontalPodAutoscaler")
    }
    assert set(hpas) == {"demo-shorty-api", "demo-shorty-redirect", "demo-shorty-worker"}
    for name, spec in hpas.items():
        assert spec["minReplicas"] == 3
        assert named(objects, "Deployment", name)["spec"].get("replicas") is None  # the HPA's
        assert {m["resource"]["name"] for m in spec["metrics"] if m["type"] == "Resource"} == {
            "cpu",
            "memory",
        }
    assert [m["pods"]["metric"]["name"] for m in hpas["demo-shorty-redirect"]["metrics"][2:]] == [
        "shorty_redirects_per_second"
    ]
    assert len(of_kind(objects, "PodDisruptionBudget")) == 3


def test_every_shorty_service_reads_the_same_secrets():
    """The JWT secret and the visitor-hash key from one Secret: the same on every replica."""
    refs = set()
    for name, pod in pod_specs(render(None)):
        if name in {"api", "redirect", "worker"}:
            env = env_of(pod["containers"][0])
            for var in ("SHORTY_JWT_SECRET", "SHORTY_SECRET_KEY"):
                ref = env[var]["valueFrom"]["secretKeyRef"]
                refs.add((var, ref["name"], ref["key"]))
    assert refs == {
        ("SHORTY_JWT_SECRET", "demo-shorty", "jwt-secret"),
        ("SHORTY_SECRET_KEY", "demo-shorty", "secret-key"),
    }
