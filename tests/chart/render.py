"""Helm, run offline on charts/shorty: lint, render, and the rendered objects by kind.

The binary is the one `make` fetches into the venv (scripts/helm.py). Renders are
cached: each scenario is rendered once per set of flags for the whole session.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "shorty"
HELM = Path(sys.executable).parent / "helm"
RELEASE = "demo"
NAMESPACE = "shorty"
OLDEST = "1.25"  # Chart.yaml kubeVersion
NEWEST = kubernetes_validate.latest_version()  # the newest schemas the package ships
PROMETHEUS_API = "monitoring.coreos.com/v1"
# Every scenario: the defaults (None) and each ci/*-values.yaml.
SCENARIOS: list[str | None] = [None, *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
# Shorty's own pods (PSS restricted, user 10001); postgresql and redis run the
# official images as their own users.
SHORTY_COMPONENTS = {"api", "redirect", "worker", "operator", "migrations", "test", "backup"}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{HELM} missing: run `make .venv/bin/helm` (scripts/helm.py)")
        pytest.skip("helm not in the venv: run `make .venv/bin/helm` (scripts/helm.py)")
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, check=check, timeout=60
    )


def values_args(scenario: str | None) -> list[str]:
    return [] if scenario is None else ["-f", str(CHART / "ci" / scenario)]


@cache
def render(
    scenario: str | None,
    kube_version: str = OLDEST,
    api_versions: tuple[str, ...] = (),
    sets: tuple[str, ...] = (),
    chart: Path = CHART,
) -> tuple[dict[str, Any], ...]:
    """Every object `helm template --include-crds` renders, hooks and tests included."""
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE, "--include-crds"]
    args += ["--kube-version", kube_version, *values_args(scenario)]
    for api in api_versions:
        args += ["--api-versions", api]
    for item in sets:
        args += ["--set", item]
    out = helm(*args).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in of_kind(objects, kind) if obj["metadata"]["name"] == name]
    return found


def component(obj: dict[str, Any]) -> str:
    return obj["metadata"]["labels"].get("app.kubernetes.io/component", "")


def pod_specs(objects: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    """(component, pod spec) of every pod the objects make."""
    pods = []
    for obj in objects:
        kind = obj["kind"]
        if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            pods.append((component(obj), obj["spec"]["template"]["spec"]))
        elif kind == "CronJob":
            pods.append((component(obj), obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind == "Pod":
            pods.append((component(obj), obj["spec"]))
    return pods


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container.get("env", [])}
