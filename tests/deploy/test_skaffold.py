"""skaffold.yaml, without skaffold (no binary or current schema here): it parses,
names the files that exist, and sets chart values that the chart has."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.render import helm

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert config["apiVersion"].startswith("skaffold/v4")
    assert config["kind"] == "Config"
    return config


def chart_values() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "charts" / "shorty" / "values.yaml").read_text())


def rendered_services(release: str, namespace: str) -> dict[str, set[int]]:
    """The Services the chart renders for ``release`` (kind's values): name -> ports."""
    args = ["template", release, str(ROOT / "charts" / "shorty"), "--namespace", namespace]
    args += ["-f", str(ROOT / "charts" / "shorty" / "ci" / "kind-minimal-values.yaml")]
    out = helm(*args).stdout
    return {
        doc["metadata"]["name"]: {port["port"] for port in doc["spec"]["ports"]}
        for doc in yaml.safe_load_all(out)
        if doc and doc["kind"] == "Service"
    }


def test_builds_the_dockerfile(skaffold: dict[str, Any]) -> None:
    [artifact] = skaffold["build"]["artifacts"]
    assert artifact["image"] == "shorty"
    assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    assert skaffold["build"]["local"]["push"] is False


def test_deploys_the_chart_with_the_built_image(skaffold: dict[str, Any]) -> None:
    [release] = skaffold["deploy"]["helm"]["releases"]
    assert release["chartPath"] == "charts/shorty"
    assert release["setValueTemplates"] == {
        "image.repository": "{{.IMAGE_REPO_shorty}}",
        "image.tag": "{{.IMAGE_TAG_shorty}}",
    }
    values = chart_values()
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    assert {"repository", "tag"} <= set(values["image"])


def test_forwards_api_and_redirect(skaffold: dict[str, Any]) -> None:
    forwards = {(f["resourceName"], f["port"], f["localPort"]) for f in skaffold["portForward"]}
    assert forwards == {("shorty-api", 8000, 8000), ("shorty-redirect", 8080, 8080)}
    assert {f["namespace"] for f in skaffold["portForward"]} == {"shorty"}
    # The Services the chart really names for skaffold's release, on those ports.
    [release] = skaffold["deploy"]["helm"]["releases"]
    services = rendered_services(release["name"], "shorty")
    for name, port, _ in forwards:
        assert port in services.get(name, set()), (name, sorted(services))


def test_kind_and_minikube_profiles(skaffold: dict[str, Any]) -> None:
    profiles = {profile["name"]: profile for profile in skaffold["profiles"]}
    assert set(profiles) == {"kind", "minikube"}
    assert profiles["kind"]["activation"] == [{"kubeContext": "kind-shorty"}]
    assert profiles["minikube"]["activation"] == [{"kubeContext": "minikube"}]


def test_the_kind_targets_use_files_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for path in (
        "scripts/kind.yaml",
        "scripts/kind-e2e.sh",
        "charts/shorty/ci/kind-minimal-values.yaml",  # KIND_VALUES
    ):
        assert path in makefile
        assert (ROOT / path).is_file()
    kind = yaml.safe_load((ROOT / "scripts/kind.yaml").read_text())
    ports = {m["containerPort"]: m["hostPort"] for m in kind["nodes"][0]["extraPortMappings"]}
    assert ports == {80: 8088, 443: 8443}
    assert "127.0.0.1:8088" in (ROOT / "scripts/kind-e2e.sh").read_text()
