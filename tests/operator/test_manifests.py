"""The operator's install manifests: valid Kubernetes objects (kubernetes-validate, the
API's own schemas), one replica replaced with Recreate, a restricted pod, the API key
from a Secret only, and arguments the ``shorty-operator`` command takes."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from shorty_operator.cli import KEY_ENV, main
from tests.operator.crd import ROOT

OPERATOR = ROOT / "manifests" / "operator"
CRDS = ROOT / "manifests" / "crds"
K8S_VERSION = "1.30"  # the oldest Kubernetes the manifests are meant for


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str) -> dict:
    found = [
        doc for path in OPERATOR.glob("*.yaml") for doc in documents(path) if doc["kind"] == kind
    ]
    assert len(found) == 1, kind
    return found[0]


@pytest.mark.parametrize(
    "path",
    [*sorted(OPERATOR.glob("*.yaml")), *sorted(CRDS.glob("*.yaml"))],
    ids=lambda path: path.name,
)
def test_every_object_is_valid_for_kubernetes(path):
    for doc in documents(path):
        if doc["apiVersion"].startswith("kopf.dev/"):
            continue  # kopf's own custom resource: checked by its CRD in a cluster
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_one_replica_replaced_whole():
    spec = by_kind("Deployment")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}


def test_the_pod_is_restricted_and_probed():
    pod = by_kind("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == by_kind("ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "limits" in container["resources"]


def test_the_probe_asks_the_port_kopf_answers_on():
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    context = main.make_context("shorty-operator", [*container["args"], "--api-url", "http://x"])
    liveness = urlsplit(context.params["liveness"])
    assert (liveness.port, liveness.path) == (ports["health"], "/healthz")
    assert ports["health"] == 8081  # not the redirect service's 8080


def test_the_api_key_comes_from_a_secret_and_the_arguments_are_the_commands():
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item for item in container["env"]}
    assert "value" not in env["SHORTY_OPERATOR_API_KEY"]
    assert env["SHORTY_OPERATOR_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "api-key"
    assert container["command"] == ["shorty-operator"]
    # The arguments parse (an unknown option would fail here as in the pod).
    context = main.make_context("shorty-operator", [*container["args"], "--api-url", "http://x"])
    assert context.params["peering"] == "shorty-operator"
    with pytest.raises(click.UsageError):
        main.make_context("shorty-operator", ["--no-such-option"])


def test_every_variable_the_deployment_sets_is_one_the_command_reads():
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    read = {KEY_ENV} | {option.envvar for option in main.params if isinstance(option.envvar, str)}
    assert {item["name"] for item in container["env"]} <= read


def test_the_peering_object_is_the_one_the_operator_uses():
    peering = by_kind("ClusterKopfPeering")
    (definition,) = documents(CRDS / "clusterkopfpeerings.kopf.dev.yaml")
    assert peering["apiVersion"] == f"{definition['spec']['group']}/v1"
    assert definition["spec"]["names"]["kind"] == peering["kind"]
    (container,) = by_kind("Deployment")["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--peering") + 1] == peering["metadata"]["name"]
    role = by_kind("ClusterRole")
    named = [rule for rule in role["rules"] if rule.get("resourceNames")]
    assert any(
        "clusterkopfpeerings" in rule["resources"]
        and rule["resourceNames"] == [peering["metadata"]["name"]]
        for rule in named
    )


def test_the_binding_grants_the_role_to_the_service_account():
    binding = by_kind("ClusterRoleBinding")
    account = by_kind("ServiceAccount")
    assert binding["roleRef"]["name"] == by_kind("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {
            "kind": "ServiceAccount",
            "name": account["metadata"]["name"],
            "namespace": account["metadata"]["namespace"],
        }
    ]


def test_the_command_refuses_a_missing_key_or_a_bad_url_before_starting(monkeypatch):
    monkeypatch.delenv("SHORTY_OPERATOR_API_KEY", raising=False)
    runner = CliRunner()
    missing = runner.invoke(main, ["--api-url", "http://shorty-api:8000"])
    assert missing.exit_code == 2
    assert "SHORTY_OPERATOR_API_KEY is not set" in missing.output
    monkeypatch.setenv("SHORTY_OPERATOR_API_KEY", "shk_test")
    bad = runner.invoke(main, ["--api-url", "shorty-api:8000"])
    assert bad.exit_code == 2
    assert "must be an http(s) URL" in bad.output
    assert "shk_test" not in missing.output + bad.output


def test_a_busy_metrics_port_stops_the_operator_with_one_line():
    """The operator's metrics listener binds --metrics-host only, through the services'
    one listener (obs/exposition.py); a port in use is one line, before kopf starts.
    (A process of its own: the command sets up logging for the whole process.)"""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("shorty-operator")),
                "--api-url",
                "http://shorty-api:8000",
                "--metrics-host",
                "127.0.0.1",
                "--metrics-port",
                str(port),
            ],
            env={**os.environ, "SHORTY_OPERATOR_API_KEY": "shk_test"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"Error: cannot serve metrics on 127.0.0.1:{port}: Address already in use;"
        " choose another --metrics-port (0: none)"
    )
