"""The logging stack in the chart (elk.enabled), read from the rendered objects: the
ConfigMaps are elk/'s files byte for byte and every ${VAR} they read is in their
container's env; Elasticsearch discovery, heap and TLS from the values; the Secret
made once and kept; only Shorty's own pods carry the label Filebeat selects; Filebeat
as restricted as it can be; the setup in init containers and a post-install hook;
and nothing but Logstash, Kibana, the setup and Elasticsearch itself reaches
Elasticsearch. The render/schema/hardening/checkov/wiring tests cover the stack
through ci/elk-values.yaml."""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import socket
import ssl
import tarfile
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from shorty.cli import main as cli_main
from shorty.cli.elk import KIBANA_SYSTEM_VAR, LOGIN_VAR, LOGSTASH_VAR
from shorty.elk.files import elasticsearch_files, saved_objects
from shorty.elk.lifecycle import Lifecycle, time_value
from tests.chart import wiring
from tests.chart.netpol import Endpoint, allowed
from tests.chart.render import (
    CHART,
    NAMESPACE,
    ROOT,
    env_of,
    helm,
    named,
    of_kind,
    render,
)

ELK = ROOT / "elk"
SCENARIO = "elk-values.yaml"  # three nodes, Kibana on /kibana, backups on
ON = ("elk.enabled=true",)  # the defaults with the stack: one node, no Ingress for Kibana
ELK_COMPONENTS = {"elasticsearch", "logstash", "kibana", "filebeat", "elk-setup"}
LOGS_LABEL = ("shorty.dev/logs", "ecs")
SETUP_ENV = {
    "SHORTY_ELK_ELASTICSEARCH_URL",
    "SHORTY_ELK_PASSWORD",
    "SHORTY_ELK_LOGSTASH_PASSWORD",
    "SHORTY_ELK_KIBANA_SYSTEM_PASSWORD",
    "SHORTY_ELK_CA_FILE",
    "SHORTY_ELK_RETENTION",
    "SHORTY_ELK_WARM_AFTER",
}
# Where each ConfigMap's keys come from, and the files of elk/ the chart ships.
SOURCES = {
    "demo-shorty-filebeat": ["filebeat/filebeat.yml"],
    "demo-shorty-logstash": ["logstash/logstash.yml", "logstash/pipelines.yml"],
    "demo-shorty-logstash-pipeline": ["logstash/pipeline/*.conf"],
    "demo-shorty-elk-setup": ["elasticsearch/*.json", "kibana/*.ndjson"],
}
NOT_SHIPPED = {"README.md"}


def component(obj: dict[str, Any]) -> str:
    return (obj["metadata"].get("labels") or {}).get("app.kubernetes.io/component", "")  # type: ignore[no-any-return]


def pod_of(objects, kind: str, name: str) -> dict[str, Any]:
    return named(objects, kind, name)["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container_named(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [
        c for c in [*pod.get("initContainers", []), *pod["containers"]] if c["name"] == name
    ]
    return found


def data_of(objects, name: str) -> dict[str, str]:
    return named(objects, "ConfigMap", name)["data"]  # type: ignore[no-any-return]


def settings(objects, name: str, key: str) -> dict[str, Any]:
    return yaml.safe_load(data_of(objects, name)[key])  # type: ignore[no-any-return]


# --- the configs are elk/'s files ------------------------------------------------------


def test_the_configmaps_are_the_elk_files_byte_for_byte():
    objects = render(SCENARIO)
    shipped = set()
    for configmap, patterns in SOURCES.items():
        files = {path for pattern in patterns for path in ELK.glob(pattern)}
        assert files, patterns
        data = data_of(objects, configmap)
        assert set(data) == {path.name for path in files}, configmap
        for path in files:
            assert data[path.name].encode() == path.read_bytes(), path
        shipped |= files
    # Every file of elk/ reaches a pod: one added there is not silently left out.
    every = {p for p in ELK.rglob("*") if p.is_file() and p.name not in NOT_SHIPPED}
    assert every - shipped == set()


def test_the_chart_reads_elk_through_its_link():
    link = CHART / "elk"
    assert link.is_symlink()
    assert link.resolve() == ELK.resolve()


def test_the_packaged_chart_carries_the_elk_files(tmp_path):
    """`helm package` follows the link: the chart as published holds the files."""
    helm("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("shorty-*.tgz")
    with tarfile.open(archive) as tar:
        packaged = {
            member.name.removeprefix("shorty/elk/"): tar.extractfile(member).read()  # type: ignore[union-attr]
            for member in tar.getmembers()
            if member.name.startswith("shorty/elk/") and member.isfile()
        }
    files = {str(p.relative_to(ELK)): p.read_bytes() for p in ELK.rglob("*") if p.is_file()}
    assert packaged == files


def test_the_setup_files_fit_in_a_configmap():
    sizes = [len(v.encode()) for v in data_of(render(SCENARIO), "demo-shorty-elk-setup").values()]
    assert sum(sizes) < 900 * 1024  # the API server refuses objects over 1 MiB


def mounted_files(pod: dict[str, Any], container: dict[str, Any], objects) -> dict[str, str]:
    """Path in the container → the text of each ConfigMap file mounted there."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        source = volumes[mount["name"]].get("configMap")
        if source is None:
            continue
        data = data_of(objects, source["name"])
        if "subPath" in mount:
            files[mount["mountPath"]] = data[mount["subPath"]]
        else:
            files.update({f"{mount['mountPath']}/{key}": text for key, text in data.items()})
    return files


# ${VAR} and ${VAR:default} in Filebeat, Logstash and Kibana configs; with a default
# the variable may be missing.
VARIABLE = re.compile(r"\$\{(\w+)(:[^}]*)?\}")


@pytest.mark.parametrize(
    ("kind", "name", "container"),
    [
        ("DaemonSet", "demo-shorty-filebeat", "filebeat"),
        ("Deployment", "demo-shorty-logstash", "logstash"),
        ("Deployment", "demo-shorty-kibana", "kibana"),
    ],
)
def test_every_variable_a_config_reads_is_in_its_containers_env(kind, name, container):
    objects = render(SCENARIO)
    pod = pod_of(objects, kind, name)
    process = container_named(pod, container)
    files = mounted_files(pod, process, objects)
    assert files
    env = set(env_of(process))
    for path, text in files.items():
        needed = {m.group(1) for m in VARIABLE.finditer(text) if m.group(2) is None}
        assert needed <= env, (path, needed - env)


def test_logstash_runs_the_pipelines_it_mounts_and_keeps_its_data_on_the_volume():
    objects = render(SCENARIO)
    pod = pod_of(objects, "Deployment", "demo-shorty-logstash")
    files = mounted_files(pod, container_named(pod, "logstash"), objects)
    pipelines = yaml.safe_load(files["/usr/share/logstash/config/pipelines.yml"])
    configs = [p["path.config"] for p in pipelines if "path.config" in p]
    assert configs
    for config in configs:
        assert [path for path in files if Path(path).match(config)], config
    logstash = yaml.safe_load(files["/usr/share/logstash/config/logstash.yml"]) or {}
    data = logstash.get("path.data", "/usr/share/logstash/data")
    queue = logstash.get("path.dead_letter_queue", f"{data}/dead_letter_queue")
    mounts = {m["mountPath"]: m["name"] for m in container_named(pod, "logstash")["volumeMounts"]}
    assert mounts[data] == "data"
    assert Path(queue).is_relative_to(data)
    claim = {v["name"]: v for v in pod["volumes"]}["data"]["persistentVolumeClaim"]
    assert named(objects, "PersistentVolumeClaim", claim["claimName"])


def logstash_bytes(text: str) -> int:
    """Logstash's byte values (512mb, 1gb): powers of 1024."""
    number, unit = re.fullmatch(r"(\d+)\s*([kmgt]?b)", str(text).lower()).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** ["b", "kb", "mb", "gb", "tb"].index(unit)


@pytest.mark.parametrize(
    ("scenario", "sets"), [(None, ON), (SCENARIO, ())], ids=["emptyDir", "pvc"]
)
def test_the_data_volume_holds_every_queue_at_its_cap(scenario, sets):
    """Each pipeline's persisted queue and dead-letter queue, at their max_bytes
    (pipelines.yml over logstash.yml over Logstash's defaults), fit in the volume."""
    objects = render(scenario, sets=sets)
    settings = yaml.safe_load(data_of(objects, "demo-shorty-logstash")["logstash.yml"]) or {}
    pipelines = yaml.safe_load(data_of(objects, "demo-shorty-logstash")["pipelines.yml"])
    defaults = {"queue.type": "memory", "queue.max_bytes": "1024mb"}
    defaults |= {"dead_letter_queue.enable": False, "dead_letter_queue.max_bytes": "1024mb"}
    needed = 0
    for pipeline in pipelines:
        merged = {**defaults, **settings, **pipeline}
        if merged["queue.type"] == "persisted":
            needed += logstash_bytes(merged["queue.max_bytes"])
        if merged["dead_letter_queue.enable"]:
            needed += logstash_bytes(merged["dead_letter_queue.max_bytes"])
    pod = pod_of(objects, "Deployment", "demo-shorty-logstash")
    volume = {v["name"]: v for v in pod["volumes"]}["data"]
    if "emptyDir" in volume:
        size = volume["emptyDir"]["sizeLimit"]
    else:
        claim = named(
            objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]
        )
        size = claim["spec"]["resources"]["requests"]["storage"]
    assert needed <= quantity(size), (needed, size)


# --- Elasticsearch -------------------------------------------------------------------


def test_one_node_is_single_node_and_more_form_a_cluster():
    single = render(None, sets=ON)
    config = settings(single, "demo-shorty-elasticsearch", "elasticsearch.yml")
    assert config["discovery.type"] == "single-node"
    assert "discovery.seed_hosts" not in config
    assert "cluster.initial_master_nodes" not in config
    assert of_kind(single, "PodDisruptionBudget") == [
        p for p in of_kind(single, "PodDisruptionBudget") if component(p) != "elasticsearch"
    ]

    cluster = render(SCENARIO)
    config = settings(cluster, "demo-shorty-elasticsearch", "elasticsearch.yml")
    statefulset = named(cluster, "StatefulSet", "demo-shorty-elasticsearch")
    assert "discovery.type" not in config
    # Seeded by the headless Service, which lists pods before they are ready; the first
    # masters are the pods' names (their host names, Elasticsearch's default node.name).
    headless = named(cluster, "Service", statefulset["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert config["discovery.seed_hosts"] == [headless["metadata"]["name"]]
    replicas = statefulset["spec"]["replicas"]
    assert replicas == 3
    assert config["cluster.initial_master_nodes"] == [
        f"demo-shorty-elasticsearch-{i}" for i in range(replicas)
    ]
    assert statefulset["spec"]["podManagementPolicy"] == "Parallel"
    (pdb,) = [p for p in of_kind(cluster, "PodDisruptionBudget") if component(p) == "elasticsearch"]
    assert pdb["spec"]["maxUnavailable"] == 1


def quantity(text: str) -> int:
    """Bytes of a Kubernetes memory quantity or a JVM size."""
    units = {"": 1, "k": 10**3, "m": 1024**2, "g": 1024**3, "Ki": 1024, "Mi": 1024**2}
    units |= {"Gi": 1024**3, "M": 10**6, "G": 10**9}
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", text).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


@pytest.mark.parametrize(("scenario", "sets", "heap"), [(None, ON, "1g"), (SCENARIO, (), "2g")])
def test_the_heap_is_from_the_values_and_at_most_half_the_memory(scenario, sets, heap):
    objects = render(scenario, sets=sets)
    pod = pod_of(objects, "StatefulSet", "demo-shorty-elasticsearch")
    elasticsearch = container_named(pod, "elasticsearch")
    assert env_of(elasticsearch)["ES_JAVA_OPTS"]["value"] == f"-Xms{heap} -Xmx{heap}"
    limit = quantity(elasticsearch["resources"]["limits"]["memory"])
    assert quantity(heap) * 2 <= limit  # the rest is the file system cache
    logstash = container_named(pod_of(objects, "Deployment", "demo-shorty-logstash"), "logstash")
    assert env_of(logstash)["LS_JAVA_OPTS"]["value"] == "-Xms512m -Xmx512m"
    assert quantity("512m") < quantity(logstash["resources"]["limits"]["memory"])


def test_mmap_is_off_unless_the_privileged_sysctl_init_container_is_on():
    default = render(None, sets=ON)
    pod = pod_of(default, "StatefulSet", "demo-shorty-elasticsearch")
    assert [c["name"] for c in pod["initContainers"]] == ["config"]
    config = settings(default, "demo-shorty-elasticsearch", "elasticsearch.yml")
    assert config["node.store.allow_mmap"] is False

    raised = render(None, sets=(*ON, "elk.elasticsearch.sysctlInitContainer=true"))
    pod = pod_of(raised, "StatefulSet", "demo-shorty-elasticsearch")
    sysctl = container_named(pod, "sysctl")
    assert sysctl["securityContext"]["privileged"] is True
    assert "262144 > /proc/sys/vm/max_map_count" in sysctl["command"][-1]
    config = settings(raised, "demo-shorty-elasticsearch", "elasticsearch.yml")
    assert "node.store.allow_mmap" not in config


def test_security_is_on_with_tls_from_the_secret():
    objects = render(SCENARIO)
    config = settings(objects, "demo-shorty-elasticsearch", "elasticsearch.yml")
    assert config["xpack.security.enabled"] is True
    pod = pod_of(objects, "StatefulSet", "demo-shorty-elasticsearch")
    mounts = {
        m["mountPath"]: m["name"] for m in container_named(pod, "elasticsearch")["volumeMounts"]
    }
    certs = {v["name"]: v for v in pod["volumes"]}[mounts["/usr/share/elasticsearch/config/certs"]]
    assert certs["secret"]["secretName"] == "demo-shorty-elk"
    shipped = {item["path"] for item in certs["secret"]["items"]}
    for layer in ("http", "transport"):
        tls = config[f"xpack.security.{layer}.ssl"]
        assert tls["enabled"] is True
        # Relative to the config directory, where the Secret is mounted as certs/.
        paths = {tls["key"], tls["certificate"], *tls["certificate_authorities"]}
        assert {p.removeprefix("certs/") for p in paths} == shipped


# --- the Secret ------------------------------------------------------------------------

PASSWORDS = {"elastic-password", "kibana-system-password", "logstash-password"}
KEYS = {"kibana-encryption-key", "kibana-saved-objects-key", "kibana-reporting-key"}
TLS = {"ca.crt", "tls.crt", "tls.key"}


def elk_secret(objects) -> dict[str, str]:
    data = named(objects, "Secret", "demo-shorty-elk")["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def test_the_secret_holds_strong_passwords_and_a_certificate_for_the_services():
    objects = render(SCENARIO)
    secret = elk_secret(objects)
    assert set(secret) == PASSWORDS | KEYS | TLS
    for key in PASSWORDS | KEYS:
        assert secret[key].isalnum(), key
        assert len(secret[key]) >= (32 if key in PASSWORDS else 48), key
    ca = x509.load_pem_x509_certificate(secret["ca.crt"].encode())
    cert = x509.load_pem_x509_certificate(secret["tls.crt"].encode())
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(names.get_values_for_type(x509.DNSName))
    # Every client reaches the client Service by its name (verification: full);
    # the nodes each other as pods of the headless Service.
    url = env_of(
        container_named(pod_of(objects, "Deployment", "demo-shorty-logstash"), "logstash")
    )["ELASTICSEARCH_HOSTS"]["value"]
    host = re.fullmatch(r"https://([^:/]+):9200", url).group(1)  # type: ignore[union-attr]
    assert named(objects, "Service", host)
    assert {host, f"{host}.{NAMESPACE}.svc", "*.demo-shorty-elasticsearch-headless"} <= dns
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
    annotations = named(objects, "Secret", "demo-shorty-elk")["metadata"]["annotations"]
    assert annotations["helm.sh/resource-policy"] == "keep"


def handshake(secret: dict[str, str], server_name: str, tmp_path: Path) -> None:
    """A TLS handshake with a server holding the Secret's certificate, by a client that
    trusts only the Secret's CA and checks the host name (as Logstash, Kibana and the
    setup do: verification "full")."""
    (tmp_path / "tls.crt").write_text(secret["tls.crt"])
    (tmp_path / "tls.key").write_text(secret["tls.key"])
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    client_context = ssl.create_default_context(cadata=secret["ca.crt"])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            with connection, contextlib.suppress(ssl.SSLError, OSError):
                server_context.wrap_socket(connection, server_side=True).close()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                client_context.wrap_socket(raw, server_hostname=server_name).close()
        finally:
            thread.join(timeout=5)


def test_the_certificate_serves_tls_to_clients_that_check_the_name(tmp_path):
    secret = elk_secret(render(SCENARIO))
    for name in ("demo-shorty-elasticsearch", "demo-shorty-elasticsearch.shorty.svc", "localhost"):
        handshake(secret, name, tmp_path)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(secret, "demo-shorty-kibana", tmp_path)


def chart_with_cluster_secret(tmp_path: Path, data: dict[str, str]) -> Path:
    """A copy of the chart (its elk/ link resolved) whose `lookup` answers with a Secret
    of ``data``, as a cluster would on upgrade."""
    copy = Path(shutil.copytree(CHART, tmp_path / "shorty"))
    template = copy / "templates" / "elk-secret.yaml"
    text = template.read_text()
    lookup = '(lookup "v1" "Secret" .Release.Namespace $name)'
    assert lookup in text
    pairs = " ".join(f'"{k}" "{base64.b64encode(v.encode()).decode()}"' for k, v in data.items())
    template.write_text(text.replace(lookup, f'(dict "data" (dict {pairs}))'))
    return copy


def test_the_secret_in_the_cluster_is_kept(tmp_path):
    fresh = elk_secret(render(None, sets=ON))
    kept = {key: f"kept{key.replace('-', '').replace('.', '')}" for key in PASSWORDS | KEYS}
    copy = chart_with_cluster_secret(tmp_path / "all", {**kept, **{k: fresh[k] for k in TLS}})
    secret = elk_secret(render(None, sets=ON, chart=copy))
    assert secret == {**kept, **{k: fresh[k] for k in TLS}}
    # Without the certificate in it (say, an older Secret), a new CA and certificate
    # are made; the passwords are still kept.
    copy = chart_with_cluster_secret(tmp_path / "passwords", kept)
    secret = elk_secret(render(None, sets=ON, chart=copy))
    assert {k: secret[k] for k in kept} == kept
    assert secret["ca.crt"] != fresh["ca.crt"]
    assert secret["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")


def test_an_existing_secret_replaces_the_generated_one():
    objects = render(SCENARIO, sets=("elk.existingSecret=my-elk",))
    assert not [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == "demo-shorty-elk"]
    names = set()
    for pod in wiring.pods(objects):
        if pod.component in ELK_COMPONENTS:
            names |= {name for kind, name, _ in wiring.references(pod) if kind == "Secret"}
    assert names == {"my-elk"}


# --- which pods Filebeat reads ---------------------------------------------------------


def test_only_shortys_own_pods_carry_the_logs_label():
    objects = render(SCENARIO)
    labelled = {
        pod.component
        for pod in wiring.pods(objects)
        if pod.labels.get(LOGS_LABEL[0]) == LOGS_LABEL[1]
    }
    assert labelled == {"api", "redirect", "worker", "operator", "migrations", "backup"}
    # Selectors never carry it (they are immutable; turning the stack on must not
    # replace a Deployment).
    for obj in objects:
        selector = obj.get("spec", {}).get("selector", {})
        assert LOGS_LABEL[0] not in selector.get("matchLabels", selector), obj["metadata"]["name"]


def test_without_the_stack_nothing_of_it_is_rendered():
    objects = render(None)
    assert not [o for o in objects if component(o) in ELK_COMPONENTS]
    assert not [o for o in objects if o["metadata"]["name"].endswith("-elk")]
    # The label stays: a Filebeat of the cluster's own, run with elk/filebeat/filebeat.yml,
    # finds Shorty's pods the same way.
    labelled = {p.component for p in wiring.pods(objects) if LOGS_LABEL[0] in p.labels}
    assert labelled == {"api", "redirect", "worker", "operator", "migrations"}


# --- Filebeat --------------------------------------------------------------------------


def test_filebeat_reads_the_node_logs_read_only_as_root_without_capabilities():
    objects = render(SCENARIO)
    pod = pod_of(objects, "DaemonSet", "demo-shorty-filebeat")
    assert pod["securityContext"]["runAsUser"] == 0
    (filebeat,) = pod["containers"]
    assert filebeat["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in filebeat["volumeMounts"]}
    assert host_paths == {
        "varlogcontainers": "/var/log/containers",
        "varlogpods": "/var/log/pods",
        "data": f"/var/lib/filebeat-{NAMESPACE}-demo-shorty",
    }
    for name in ("varlogcontainers", "varlogpods"):
        assert mounts[name]["readOnly"] is True
        assert mounts[name]["mountPath"] == host_paths[name]  # the symlinks resolve
    assert mounts["data"]["mountPath"] == "/usr/share/filebeat/data"
    env = env_of(filebeat)
    assert env["NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    host, port = env["LOGSTASH_HOSTS"]["value"].split(":")
    service = named(objects, "Service", host)
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}


def test_filebeats_role_only_reads_what_kubernetes_metadata_needs():
    objects = render(SCENARIO)
    role = named(objects, "ClusterRole", "demo-shorty-filebeat")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    reads = {"get", "list", "watch"}
    assert granted == {
        *((group, resource, verb) for group, resource in [
            ("", "pods"), ("", "namespaces"), ("", "nodes"), ("apps", "replicasets")
        ] for verb in reads),
    }  # fmt: skip


# --- the setup -------------------------------------------------------------------------


def test_logstash_and_kibana_start_after_the_setup_of_elasticsearch():
    objects = render(SCENARIO)
    for name in ("demo-shorty-logstash", "demo-shorty-kibana"):
        pod = pod_of(objects, "Deployment", name)
        (setup,) = pod["initContainers"]
        assert setup["command"] == [
            "shorty", "elk", "setup", "--part", "elasticsearch", "--config-dir", "/etc/shorty/elk"
        ]  # fmt: skip
        assert set(env_of(setup)) == SETUP_ENV, name


def test_the_hook_job_sets_up_everything_after_each_install_and_upgrade():
    objects = render(SCENARIO)
    job = named(objects, "Job", "demo-shorty-elk-setup")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "post-install,post-upgrade,post-rollback"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation"
    assert job["spec"]["activeDeadlineSeconds"] == 900
    assert job["spec"]["backoffLimit"] == 3
    pod = job["spec"]["template"]["spec"]
    (setup,) = pod["containers"]
    assert setup["command"][3:5] == ["--part", "all"]
    env = env_of(setup)
    assert set(env) == SETUP_ENV | {"SHORTY_ELK_KIBANA_URL"}
    assert env["SHORTY_ELK_RETENTION"]["value"] == "30d"
    assert env["SHORTY_ELK_WARM_AFTER"]["value"] == "3d"
    # Kibana under its base path; Elasticsearch's client Service over HTTPS.
    assert env["SHORTY_ELK_KIBANA_URL"]["value"] == "http://demo-shorty-kibana:5601/kibana"
    assert env["SHORTY_ELK_ELASTICSEARCH_URL"]["value"] == "https://demo-shorty-elasticsearch:9200"
    # The files and the CA, where the command is told they are.
    mounts = {m["mountPath"]: m["name"] for m in setup["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_dir = setup["command"][setup["command"].index("--config-dir") + 1]
    assert volumes[mounts[config_dir]]["configMap"]["name"] == "demo-shorty-elk-setup"
    ca = Path(env["SHORTY_ELK_CA_FILE"]["value"])
    secret = volumes[mounts[str(ca.parent)]]["secret"]
    assert secret["secretName"] == "demo-shorty-elk"
    assert [item["path"] for item in secret["items"]] == [ca.name]


def setup_containers(objects) -> list[dict[str, Any]]:
    found = [
        container_named(deployment["spec"]["template"]["spec"], "elk-setup")
        for deployment in of_kind(objects, "Deployment")
        if component(deployment) in {"logstash", "kibana"}
    ]
    return [*found, *pod_of(objects, "Job", "demo-shorty-elk-setup")["containers"]]


@pytest.mark.parametrize("sets", [(), ("elk.kibana.enabled=false",)], ids=["kibana", "no-kibana"])
def test_the_setup_containers_give_the_command_all_it_reads(sets, tmp_path):
    """`shorty elk setup` as the CLI defines it (shorty.cli.elk): the chart's options
    are its options, its env its variables, and what the part needs is there; the
    flat ConfigMap folder reads; the retention and warm age are ones it takes."""
    objects = render(SCENARIO, sets=sets)
    command = cli_main.commands["elk"].commands["setup"]  # type: ignore[attr-defined]
    options = {name: param for param in command.params for name in param.opts}
    variables = {param.envvar for param in command.params if param.envvar}
    passwords = {LOGIN_VAR, LOGSTASH_VAR, KIBANA_SYSTEM_VAR}
    for name, text in data_of(objects, "demo-shorty-elk-setup").items():
        (tmp_path / name).write_text(text)
    assert elasticsearch_files(tmp_path).index_template
    assert saved_objects(tmp_path).count > 0
    containers = setup_containers(objects)
    assert len(containers) == (2 if sets else 3)  # Logstash's, Kibana's, the Job's
    for container in containers:
        argv = container["command"]
        assert argv[:3] == ["shorty", "elk", "setup"]
        parsed = dict(zip(argv[3::2], argv[4::2], strict=True))
        assert set(parsed) <= set(options)
        part = parsed["--part"]
        assert part in options["--part"].type.choices  # type: ignore[attr-defined]
        env = env_of(container)
        assert set(env) <= variables | passwords
        needed = {LOGIN_VAR}
        if part in {"elasticsearch", "all"}:
            needed |= {"SHORTY_ELK_ELASTICSEARCH_URL", LOGSTASH_VAR, KIBANA_SYSTEM_VAR}
        if part in {"kibana", "all"}:
            needed |= {"SHORTY_ELK_KIBANA_URL"}
        assert needed <= set(env), (part, needed - set(env))
        Lifecycle(
            time_value(env["SHORTY_ELK_RETENTION"]["value"]),
            time_value(env["SHORTY_ELK_WARM_AFTER"]["value"]),
        )


def test_without_kibana_the_setup_leaves_it_out():
    objects = render(None, sets=(*ON, "elk.kibana.enabled=false"))
    assert not [o for o in objects if component(o) == "kibana"]
    assert not [o for o in objects if o["metadata"]["name"].endswith("-kibana")]
    (setup,) = named(objects, "Job", "demo-shorty-elk-setup")["spec"]["template"]["spec"][
        "containers"
    ]
    assert setup["command"][3:5] == ["--part", "elasticsearch"]
    assert "SHORTY_ELK_KIBANA_URL" not in env_of(setup)


# --- Kibana ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "host", "path", "base"),
    [
        (("elk.kibana.ingress.enabled=true",), "sho.localhost", "/kibana", "/kibana"),
        (
            ("elk.kibana.ingress.enabled=true", "elk.kibana.ingress.host=kibana.sho.localhost"),
            "kibana.sho.localhost",
            "/",
            None,
        ),
    ],
    ids=["path", "host"],
)
def test_kibana_on_a_path_of_the_public_host_or_a_host_of_its_own(sets, host, path, base):
    objects = render(None, sets=(*ON, *sets))
    ingress = named(objects, "Ingress", "demo-shorty-kibana")
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == host
    (route,) = rule["http"]["paths"]
    assert route["path"] == path
    assert route["backend"]["service"] == {"name": "demo-shorty-kibana", "port": {"name": "http"}}
    config = settings(objects, "demo-shorty-kibana", "kibana.yml")
    assert config.get("server.basePath") == base
    assert config.get("server.rewriteBasePath") is (True if base else None)
    assert config["server.publicBaseUrl"] == f"http://{host}{base or ''}"
    assert config["elasticsearch.hosts"] == ["https://demo-shorty-elasticsearch:9200"]
    assert config["elasticsearch.ssl.verificationMode"] == "full"


def test_kibana_has_no_ingress_by_default():
    objects = render(None, sets=ON)
    assert [i["metadata"]["name"] for i in of_kind(objects, "Ingress")] == ["demo-shorty"]
    assert "server.basePath" not in settings(objects, "demo-shorty-kibana", "kibana.yml")


# --- who reaches Elasticsearch ----------------------------------------------------------


def endpoints(objects) -> dict[str, list[Endpoint]]:
    """component → its pods as endpoints; two of Elasticsearch's, to try node to node."""
    found: dict[str, list[Endpoint]] = {}
    namespace = {"kubernetes.io/metadata.name": NAMESPACE}
    for index, pod in enumerate(wiring.pods(objects)):
        copies = 2 if pod.component == "elasticsearch" else 1
        for n in range(copies):
            ip = f"10.244.1.{index * 2 + n + 1}"
            endpoint = Endpoint(pod.component, NAMESPACE, pod.labels, namespace, ip)
            found.setdefault(pod.component, []).append(endpoint)
    ingress = {"kubernetes.io/metadata.name": "ingress-nginx"}
    controller = {"app.kubernetes.io/name": "ingress-nginx"}
    found["ingress-controller"] = [
        Endpoint("ingress-controller", "ingress-nginx", controller, ingress, "10.244.9.1")
    ]
    found["stranger"] = [Endpoint("stranger", NAMESPACE, {"app": "x"}, namespace, "10.244.9.3")]
    found["outsider"] = [Endpoint("outsider", "elsewhere", {}, {}, "10.244.9.4")]
    return found


@pytest.mark.parametrize("default_deny", [True, False], ids=["default-deny", "no-default-deny"])
def test_nothing_but_logstash_kibana_the_setup_and_its_nodes_reach_elasticsearch(default_deny):
    sets = () if default_deny else ("networkPolicy.defaultDeny=false",)
    objects = render(SCENARIO, sets=sets)
    policies = of_kind(objects, "NetworkPolicy")
    found = endpoints(objects)
    first, second = found["elasticsearch"]
    reach: dict[int, set[str]] = {9200: set(), 9300: set()}
    for name, sources in found.items():
        for source in sources:
            if source is first:
                continue
            for port in reach:
                if allowed(policies, NAMESPACE, source, first, port):
                    reach[port].add(name)
    assert reach == {9200: {"logstash", "kibana", "elk-setup"}, 9300: {"elasticsearch"}}
    assert allowed(policies, NAMESPACE, first, second, 9300)
    assert not allowed(policies, NAMESPACE, first, second, 9200)


# --- values -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("elk.retention=2 weeks", "elk/retention"),
        ("elk.elasticsearch.heapSize=1.5g", "elk/elasticsearch/heapSize"),
        ("elk.kibana.ingress.path=kibana/", "elk/kibana/ingress/path"),
        ("elk.elasticsearch.replica=3", "additional properties 'replica' not allowed"),
    ],
)
def test_the_schema_rejects_bad_elk_values(setting, message):
    result = helm(
        "template", "demo", str(CHART), "--set", "elk.enabled=true", "--set", setting, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_a_persistent_dead_letter_queue_takes_one_logstash():
    result = helm(
        "template", "demo", str(CHART), "-f", str(CHART / "ci" / SCENARIO),
        "--set", "elk.logstash.replicas=2", check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "set elk.logstash.replicas to 1" in result.stderr


@pytest.mark.parametrize(
    ("warm_after", "renders"),
    [("335h", True), ("13d", True), ("336h", False), ("14d", False), ("20d", False)],
)
def test_warm_after_must_come_before_retention(warm_after: str, renders: bool):
    """Else every setup container would refuse the values (shorty elk setup does too)."""
    args = ["template", "demo", str(CHART), "--set", "elk.enabled=true"]
    result = helm(*args, "--set", f"elk.warmAfter={warm_after}", check=False)
    assert (result.returncode == 0) is renders, result.stderr
    if not renders:
        assert f"elk.warmAfter ({warm_after}) must be shorter than elk.retention" in result.stderr
