"""The chart's settings and secrets, read from the rendered objects: the Secret made
once and kept through `lookup`, the database and Redis env, the public URL and
trusted proxies from the Ingress, the migrations hook's order."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.chart.render import CHART, SCENARIOS, helm, named, of_kind, pod_specs, render

SECRET_KEYS = {
    "postgres-password",
    "redis-password",
    "jwt-secret",
    "secret-key",
    "initial-api-key",
    "operator-api-key",
}


def secret_data(objects) -> dict[str, str]:
    data = named(objects, "Secret", "demo-shorty")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_the_secret_is_generated_strong_and_alphanumeric():
    data = secret_data(render(None))
    assert set(data) == SECRET_KEYS
    for key, value in data.items():
        assert value.isalnum(), key  # they go into URLs and $(VAR) references
        assert len(value) >= 32, key  # SHORTY_JWT_SECRET needs 32 bytes, the rest 16
    assert len(data["jwt-secret"]) == 48


def test_without_a_cluster_each_render_makes_new_values():
    """Offline `lookup` finds nothing, so nothing is fixed in the chart itself."""
    first = secret_data(render(None, sets=("nameOverride=shorty",)))
    second = secret_data(render(None))
    assert all(first[key] != second[key] for key in SECRET_KEYS)


def test_the_secret_already_in_the_cluster_is_kept(tmp_path):
    """`lookup` cannot answer offline: a copy of the chart has it answer with a fixed
    Secret, as a cluster would on upgrade; both renders must keep its values."""
    copy = Path(shutil.copytree(CHART, tmp_path / "shorty"))
    template = copy / "templates" / "secret.yaml"
    text = template.read_text()
    lookup = '(lookup "v1" "Secret" .Release.Namespace $name)'
    assert lookup in text
    existing = " ".join(
        f'"{key}" "{base64.b64encode(f"kept-{key}".encode()).decode()}"'
        for key in sorted(SECRET_KEYS)
    )
    template.write_text(text.replace(lookup, f'(dict "data" (dict {existing}))'))
    renders = [secret_data(render(None, chart=copy, sets=(f"api.replicas={n}",))) for n in (2, 3)]
    for data in renders:
        assert data == {key: f"kept-{key}" for key in SECRET_KEYS}


def test_the_secret_is_made_before_the_migrations_and_kept_on_uninstall():
    objects = render(None)
    annotations = named(objects, "Secret", "demo-shorty")["metadata"]["annotations"]
    job = named(objects, "Job", "demo-shorty-migrations")["metadata"]["annotations"]
    assert annotations["helm.sh/resource-policy"] == "keep"
    assert set(job["helm.sh/hook"].split(",")) <= set(annotations["helm.sh/hook"].split(","))
    assert int(annotations["helm.sh/hook-weight"]) < int(job["helm.sh/hook-weight"])


def test_an_existing_secret_replaces_the_generated_one():
    objects = render(None, sets=("secrets.existingSecret=mine",))
    assert of_kind(objects, "Secret") == []
    api = next(pod for name, pod in pod_specs(objects) if name == "api")
    names = {
        var["valueFrom"]["secretKeyRef"]["name"]
        for var in api["containers"][0]["env"]
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    assert names == {"mine"}


@pytest.mark.parametrize(
    ("scenario", "hooks", "init"),
    [
        (None, "pre-upgrade", True),  # the chart's PostgreSQL does not exist before install
        ("external-db-and-redis-values.yaml", "pre-install,pre-upgrade", False),
    ],
)
def test_migrations_run_before_install_or_upgrade(scenario, hooks, init):
    objects = render(scenario)
    job = named(objects, "Job", "demo-shorty-migrations")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == hooks
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["shorty", "migrate"]
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 3
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    for name, pod in pod_specs(objects):
        if name in {"api", "redirect", "worker"}:
            migrates = [c["command"] for c in pod.get("initContainers", [])]
            assert migrates == ([["shorty", "migrate", "--allow-newer"]] if init else []), name


def hook_reference_problems(objects) -> list[str]:
    """A pre-install hook runs before the chart's ordinary objects exist: what its pod
    names (a ServiceAccount, a Secret, a ConfigMap, a PVC; in env or as a volume) must
    be a hook of a lower weight, or none. A hook that runs only after the install or
    upgrade or rollback (the ELK setup Job) may also name the release's ordinary objects."""

    def hook(obj):
        annotations = obj["metadata"].get("annotations") or {}
        if "helm.sh/hook" not in annotations:
            return None
        return int(annotations.get("helm.sh/hook-weight", "0"))

    hooks = {(o["kind"], o["metadata"]["name"]): hook(o) for o in objects if hook(o) is not None}
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    problems = []
    for obj in objects:
        weight = hook(obj)
        if weight is None or obj["kind"] != "Job":
            continue
        phases = set(obj["metadata"]["annotations"]["helm.sh/hook"].split(","))
        if "test" in phases:
            continue
        after_install = phases <= {"post-install", "post-upgrade", "post-rollback"}
        pod = obj["spec"]["template"]["spec"]
        named_objects = []
        if "serviceAccountName" in pod:
            named_objects.append(("ServiceAccount", pod["serviceAccountName"]))
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    named_objects.append(("Secret", ref["secretKeyRef"]["name"]))
                if "configMapKeyRef" in ref:
                    named_objects.append(("ConfigMap", ref["configMapKeyRef"]["name"]))
            for source in container.get("envFrom", []):
                for kind, key in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                    if key in source:
                        named_objects.append((kind, source[key]["name"]))
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                named_objects.append(("Secret", volume["secret"]["secretName"]))
            if "configMap" in volume:
                named_objects.append(("ConfigMap", volume["configMap"]["name"]))
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"]["claimName"]
                named_objects.append(("PersistentVolumeClaim", claim))
        for ref in named_objects:
            if ref not in rendered:
                continue  # the user's own (existingSecret): there before the install
            if after_install and ref not in hooks:
                continue  # an ordinary object of the release: made before post-* hooks
            if ref not in hooks:
                problems.append(f"Job/{obj['metadata']['name']} uses {ref}: not a hook")
            elif hooks[ref] >= weight:
                problems.append(f"Job/{obj['metadata']['name']} uses {ref}: not before it")
    return problems


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_hook_pods_use_only_objects_that_exist_before_them(scenario):
    """(The migrations Job once named the chart's ServiceAccount: on a first install
    with an external database its pod would have been refused.)"""
    assert hook_reference_problems(render(scenario)) == []


def test_the_hook_check_reports_a_hook_that_runs_too_early():
    objects = copy.deepcopy(list(render("elk-values.yaml")))
    assert hook_reference_problems(objects) == []
    job = named(objects, "Job", "demo-shorty-elk-setup")
    job["metadata"]["annotations"]["helm.sh/hook"] = "pre-install,pre-upgrade"
    assert hook_reference_problems(objects) == [
        "Job/demo-shorty-elk-setup uses ('ConfigMap', 'demo-shorty-elk-setup'): not a hook"
    ]
    job["metadata"]["annotations"]["helm.sh/hook-weight"] = "-10"
    assert "Job/demo-shorty-elk-setup uses ('Secret', 'demo-shorty-elk'): not before it" in (
        hook_reference_problems(objects)
    )


def resolve(env: dict[str, dict], name: str, secrets: dict[str, str]) -> str:
    """A variable's value as the kubelet makes it: $(VAR) references to earlier
    variables expanded, secrets read from ``secrets``."""
    item = env[name]
    if "valueFrom" in item:
        return secrets[item["valueFrom"]["secretKeyRef"]["key"]]
    return re.sub(r"\$\((\w+)\)", lambda m: resolve(env, m.group(1), secrets), item["value"])


def test_the_database_and_redis_urls_compose_from_the_secret():
    objects = render(None)
    secrets = secret_data(objects)
    api = next(pod for name, pod in pod_specs(objects) if name == "api")
    variables = api["containers"][0]["env"]
    env = {item["name"]: item for item in variables}
    order = [item["name"] for item in variables]
    for url, parts in (
        ("SHORTY_DATABASE_URL", ["PGUSER", "PGPASSWORD", "PGHOST", "PGPORT", "PGDATABASE"]),
        ("SHORTY_REDIS_URL", ["REDIS_PASSWORD"]),
    ):
        # The kubelet expands only variables defined before.
        assert all(order.index(part) < order.index(url) for part in parts)
    password = secrets["postgres-password"]
    assert resolve(env, "SHORTY_DATABASE_URL", secrets) == (
        f"postgresql://shorty:{password}@demo-shorty-postgresql:5432/shorty"
    )
    assert resolve(env, "SHORTY_REDIS_URL", secrets) == (
        f"redis://:{secrets['redis-password']}@demo-shorty-redis:6379/0"
    )
    postgres = named(objects, "StatefulSet", "demo-shorty-postgresql")
    (container,) = postgres["spec"]["template"]["spec"]["containers"]
    assert env_value(container, "POSTGRES_USER") == "shorty"
    assert env_value(container, "POSTGRES_DB") == "shorty"


def env_value(container: dict, name: str) -> str:
    (value,) = [item["value"] for item in container["env"] if item["name"] == name]
    return value


def test_an_external_database_and_redis_come_from_their_secrets():
    objects = render("external-db-and-redis-values.yaml")
    assert of_kind(objects, "StatefulSet") == []
    api = next(pod for name, pod in pod_specs(objects) if name == "api")
    env = {item["name"]: item for item in api["containers"][0]["env"]}
    assert env["SHORTY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "shorty-db-app",
        "key": "uri",
    }
    assert env["SHORTY_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "shorty-redis",
        "key": "url",
    }
    assert env["PGHOST"]["value"] == "shorty-db-rw"  # pg_dump and psql read the parts


def test_redis_is_append_only_with_its_password():
    redis = named(render(None), "StatefulSet", "demo-shorty-redis")
    (container,) = redis["spec"]["template"]["spec"]["containers"]
    args = " ".join(container["args"])
    assert "--appendonly yes" in args
    assert "--appendfsync everysec" in args
    # The password goes on stdin, never into the argv (tests/chart/test_redis_run.py).
    assert 'requirepass "$password"' in container["args"][0]
    assert "$(REDIS_PASSWORD)" not in " ".join([*container["command"], *container["args"]])


def config_of(objects) -> dict[str, str]:
    return named(objects, "ConfigMap", "demo-shorty")["data"]


def ingress_paths(objects) -> dict[tuple[str, str], tuple[str, str]]:
    (ingress,) = of_kind(objects, "Ingress")
    return {
        (rule["host"], path["path"]): (
            path["backend"]["service"]["name"],
            path["backend"]["service"]["port"]["name"],
        )
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }


def test_one_host_serves_links_and_the_api():
    objects = render(None)
    assert ingress_paths(objects) == {
        ("sho.localhost", "/"): ("demo-shorty-redirect", "http"),
        ("sho.localhost", "/api"): ("demo-shorty-api", "http"),
        ("sho.localhost", "/ui"): ("demo-shorty-api", "http"),  # the web app
    }
    config = config_of(objects)
    assert config["SHORTY_PUBLIC_URL"] == "http://sho.localhost"
    assert config["SHORTY_TRUSTED_PROXIES"] == "10.244.0.0/16"
    assert "SHORTY_OWN_HOSTS" not in config


def test_the_api_on_its_own_host_with_tls():
    objects = render("production-like-values.yaml")
    assert ingress_paths(objects) == {
        ("sho.rt", "/"): ("demo-shorty-redirect", "http"),
        ("api.sho.rt", "/api"): ("demo-shorty-api", "http"),
        ("api.sho.rt", "/ui"): ("demo-shorty-api", "http"),
    }
    (ingress,) = of_kind(objects, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["sho.rt", "api.sho.rt"], "secretName": "demo-shorty-tls"}
    ]
    config = config_of(objects)
    assert config["SHORTY_PUBLIC_URL"] == "https://sho.rt"
    assert config["SHORTY_OWN_HOSTS"] == "api.sho.rt"  # no link may point at the API
    assert config["SHORTY_API_REPLICAS"] == "3"
    assert config["SHORTY_REDIRECT_RATE"] == "50"  # from values `config:`


def test_no_ingress_reaches_a_metrics_port():
    """The Ingress routes HTTP ports of the api and redirect Services only; the live
    view's headless Services on the metrics ports are the API's alone."""
    objects = render("production-like-values.yaml")
    assert {port for _, port in ingress_paths(objects).values()} == {"http"}
    routed = {service for service, _ in ingress_paths(objects).values()}
    assert routed == {"demo-shorty-api", "demo-shorty-redirect"}


def test_the_live_view_reads_every_pod_of_each_component():
    config = config_of(render(None))
    targets = json.loads(config["SHORTY_LIVE_TARGETS"])
    assert targets == [
        {
            "name": "api",
            "kind": "api",
            "metrics": "http://demo-shorty-api-metrics:9100/metrics",
            "health": "http://demo-shorty-api-metrics:8000/readyz",
        },
        {
            "name": "redirect",
            "kind": "redirect",
            "metrics": "http://demo-shorty-redirect-metrics:9101/metrics",
            "health": "http://demo-shorty-redirect-metrics:8080/readyz",
        },
        {
            "name": "worker",
            "kind": "worker",
            "metrics": "http://demo-shorty-worker-metrics:9102/metrics",
        },
    ]
    # The settings take them as they are.
    from shorty.settings import load_settings

    assert [t.kind for t in load_settings(live_targets=targets).live_targets] == [
        "api",
        "redirect",
        "worker",
    ]
    off = config_of(render(None, sets=("liveView.enabled=false",)))
    assert "SHORTY_LIVE_TARGETS" not in off


def test_without_an_ingress_no_proxy_is_trusted():
    config = config_of(render(None, sets=("ingress.enabled=false",)))
    assert config["SHORTY_PUBLIC_URL"] == "http://localhost:8080"
    assert "SHORTY_TRUSTED_PROXIES" not in config


def test_the_operator_and_the_api_share_its_key():
    objects = render(None)
    pods = dict(pod_specs(objects))
    api_env = {item["name"]: item for item in pods["api"]["containers"][0]["env"]}
    operator_env = {item["name"]: item for item in pods["operator"]["containers"][0]["env"]}
    key = {"name": "demo-shorty", "key": "operator-api-key"}
    assert api_env["SHORTY_OPERATOR_API_KEY"]["valueFrom"]["secretKeyRef"] == key
    assert operator_env["SHORTY_OPERATOR_API_KEY"]["valueFrom"]["secretKeyRef"] == key
    assert operator_env["SHORTY_OPERATOR_API_URL"]["value"] == "http://demo-shorty-api:8000"
    operator = pods["operator"]["containers"][0]
    assert operator["args"][:2] == ["--peering", "demo-shorty-operator"]
    assert named(objects, "ClusterKopfPeering", "demo-shorty-operator")
    (role,) = of_kind(objects, "ClusterRole")
    patchable = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert patchable == [
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["clusterkopfpeerings"],
            "resourceNames": ["demo-shorty-operator"],
            "verbs": ["patch"],
        }
    ]


def test_operator_off_leaves_no_cluster_wide_object_but_the_crds():
    objects = render("operator-off-values.yaml")
    kinds = {obj["kind"] for obj in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}
    api = dict(pod_specs(objects))["api"]
    assert "SHORTY_OPERATOR_API_KEY" not in {item["name"] for item in api["containers"][0]["env"]}
    test_pod = dict(pod_specs(objects))["test"]
    api_key = {item["name"]: item for item in test_pod["containers"][0]["env"]}["API_KEY"]
    assert api_key["valueFrom"]["secretKeyRef"]["key"] == "initial-api-key"


def test_the_helm_test_pod_checks_readiness_and_one_redirect():
    (pod,) = of_kind(render(None), "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    script = container["args"][0]
    compile(script, "helm-test", "exec")  # it is Python the image runs
    assert container["image"] == "ghcr.io/shorty-dev/shorty:0.1.0"
    for needed in ('"/readyz"', '"/api/v1/shorten"', '"target"', "location == target"):
        assert needed in script


def test_helm_fails_clearly_without_a_database():
    result = helm("template", "demo", str(CHART), "--set", "postgresql.enabled=false", check=False)
    assert result.returncode != 0
    assert "externalDatabase.existingSecret is required" in result.stderr
