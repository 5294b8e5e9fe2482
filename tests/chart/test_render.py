"""charts/shorty without a cluster: lint with zero findings, every scenario rendered
for the oldest and newest Kubernetes (with and without the Prometheus Operator API),
every object valid against Kubernetes' own schemas (custom resources against the
chart's CRDs), the values schema strict, the CRDs the same files as manifests/crds/."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.chart.render import (
    CHART,
    NEWEST,
    OLDEST,
    PROMETHEUS_API,
    ROOT,
    SCENARIOS,
    helm,
    render,
    values_args,
)


def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → openAPIV3Schema, from the chart's crds/."""
    schemas = {}
    for path in (CHART / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_lint_strict_has_no_findings(scenario):
    result = helm("lint", "--strict", str(CHART), *values_args(scenario), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    findings = re.findall(r"^\[(INFO|WARNING|ERROR)\].*$", result.stdout, re.MULTILINE)
    assert findings == [], result.stdout


@pytest.mark.parametrize("apis", [(), (PROMETHEUS_API,)], ids=["plain", "prometheus-operator"])
@pytest.mark.parametrize("kube", [OLDEST, NEWEST])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_every_object_is_valid_for_kubernetes(scenario, kube, apis):
    custom = crd_schemas()
    objects = render(scenario, kube, apis)
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in custom:  # a custom resource: its CRD's schema, as the API server would
            jsonschema.validate(obj, custom[key])
            continue
        if obj["apiVersion"] == PROMETHEUS_API:  # the Prometheus Operator's CRD models:
            continue  # tests/chart/test_monitoring.py validates these
        # Strict: unknown fields fail, and so does an unknown kind (SchemaNotFoundError).
        kubernetes_validate.validate(obj, kube, strict=True)


def test_an_unknown_kind_fails_hard():
    """The check above must not pass what it has no schema for."""
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(
            {"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}},
            OLDEST,
            strict=True,
        )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("replicaCount=3", "additional properties 'replicaCount' not allowed"),
        ("api.replicass=3", "additional properties 'replicass' not allowed"),
        ("api.replicas=three", "got string, want integer"),
        ("ingress.tls.enabled=maybe", "got string, want boolean"),
        ("image.tag=latest", "image/tag"),
        ("externalDatabase.sslmode=sometimes", "sslmode"),
        ("config.SHORTY_LOG_LEVEL=DEBUG", "invalid propertyName 'SHORTY_LOG_LEVEL'"),
        ("config.JWT_SECRET=x", "invalid propertyName 'JWT_SECRET'"),
    ],
)
def test_the_values_schema_rejects_typos_and_bad_types(setting, message):
    result = helm("template", "demo", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def key_paths(values: dict[str, Any], prefix: str = "") -> list[tuple[str, bool]]:
    """(dotted path, is a leaf) of every key."""
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        nested = isinstance(value, dict) and bool(value)
        paths.append((path, not nested))
        if nested:
            paths += key_paths(value, f"{path}.")
    return paths


def test_every_values_key_is_documented():
    """Every leaf of values.yaml has its `## @param path` comment, itself or an
    enclosing key (maps given whole, like resources); no comment names a missing key."""
    text = (CHART / "values.yaml").read_text()
    documented = set(re.findall(r"@param (\S+)", text))
    paths = key_paths(yaml.safe_load(text))
    missing = [
        path
        for path, leaf in paths
        if leaf
        and not any(
            ".".join(path.split(".")[:n]) in documented for n in range(1, path.count(".") + 2)
        )
    ]
    assert missing == []
    assert documented - {path for path, _ in paths} == set()


@pytest.mark.parametrize(
    "name", ["shortlinks.shorty.dev.yaml", "clusterkopfpeerings.kopf.dev.yaml"]
)
def test_the_crds_are_the_manifests_files(name):
    """One source: the chart ships manifests/crds/ byte for byte (cp them over)."""
    shipped = (CHART / "crds" / name).read_bytes()
    assert shipped == (ROOT / "manifests" / "crds" / name).read_bytes()


def test_the_chart_ships_only_those_crds():
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in (ROOT / "manifests" / "crds").glob("*.yaml")
    )
