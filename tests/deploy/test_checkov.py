"""checkov (scripts/checkov.py, its own venv) finds nothing in the chart, in what every
ci scenario renders, in the Dockerfile and in the workflows; it does find a privileged
pod; and every check .checkov.yaml skips is one checkov would otherwise fail, with its
reason written above it."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.chart.render import CHART, HELM, SCENARIOS, helm, values_args

ROOT = Path(__file__).resolve().parents[2]


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("checkov_scan", ROOT / "scripts" / "checkov.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


scan = load_script()
SKIPPED = yaml.safe_load(scan.CONFIG.read_text())["skip-check"]


@pytest.fixture(scope="module", autouse=True)
def checkov() -> Path:
    """Made by `make` before pytest; here too (idempotent) so plain pytest works."""
    return scan.install()


def test_the_chart_passes_with_helm_really_run():
    helm("version")  # skips (fails under CI=true) without the venv's helm
    report = scan.scan("helm", CHART, helm=HELM)
    assert report.problems() == []
    assert report.ran
    assert report.passed > 100, report.line()


def test_without_helm_the_chart_scan_is_a_failure_not_a_pass(monkeypatch):
    """checkov itself exits 0 and checks nothing when `helm` is not on PATH."""
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    report = scan.scan("helm", CHART)
    assert not report.ran
    assert report.problems() == ["helm charts/shorty: checkov ran no helm check"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_each_rendered_scenario_passes(scenario, tmp_path):
    args = ["template", "demo", str(CHART), "--namespace", "shorty", "--include-crds"]
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(helm(*args, *values_args(scenario)).stdout)
    report = scan.scan("kubernetes", manifest)
    assert report.problems() == []
    assert report.passed > 100, report.line()


def test_the_dockerfile_passes():
    report = scan.scan("dockerfile", ROOT / "Dockerfile")
    assert report.problems() == []
    assert report.passed > 50, report.line()


def test_the_workflows_pass():
    report = scan.scan("github_actions", ROOT / ".github" / "workflows")
    assert report.problems() == []
    assert report.passed > 20, report.line()


def test_a_privileged_pod_fails(tmp_path):
    """The same call, the same skips, on a pod the chart must never make."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "namespace": "shorty"},
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "name": "bad",
                    "image": "shorty:1.0.0",
                    "securityContext": {"privileged": True, "allowPrivilegeEscalation": True},
                }
            ],
        },
    }
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    report = scan.scan("kubernetes", tmp_path / "bad.yaml")
    failed = {finding.split()[0] for finding in report.failed}
    assert {"CKV_K8S_16", "CKV_K8S_20", "CKV_K8S_19"} <= failed, failed
    assert report.problems()


ANNOTATION_SKIP = re.compile(r"^checkov\.io/skip\d+$")


def strip_annotation_skips(path: Path) -> set[tuple[str, str]]:
    """Remove the `checkov.io/skipN` annotations from a rendered file; (check, "Kind
    name") of each one removed."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    removed = set()
    for doc in docs:
        annotations = doc["metadata"].get("annotations") or {}
        for key in [k for k in annotations if ANNOTATION_SKIP.match(k)]:
            check, _, reason = annotations.pop(key).partition("=")
            assert reason.strip(), f"{doc['kind']}/{doc['metadata']['name']}: {check} says no why"
            removed.add((check, f"{doc['kind']}.default.{doc['metadata']['name']}"))
    path.write_text(yaml.safe_dump_all(docs))
    return removed


def test_every_skip_is_needed_and_says_why(tmp_path):
    """Without .checkov.yaml, and without the objects' own `checkov.io/skipN`
    annotations, checkov fails each skipped check somewhere (an annotation's on its
    object); and each skip has a comment of its own just above it (an annotation its
    reason after the `=`)."""
    helm("version")
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    annotated = set()
    for path in scan.render_scenarios(HELM, rendered):
        annotated |= strip_annotation_skips(path)
    assert annotated == {("CKV_K8S_23", "DaemonSet.default.demo-shorty-filebeat")}
    empty = tmp_path / "no-skips.yaml"
    empty.write_text("skip-download: true\n")
    failed = set()
    for framework, target in (("kubernetes", rendered), ("dockerfile", ROOT / "Dockerfile")):
        report = scan.scan(framework, target, config=empty)
        failed |= {finding.split()[0] for finding in report.failed}
        annotated -= {tuple(finding.split()[:2]) for finding in report.failed}
    assert set(SKIPPED) <= failed, set(SKIPPED) - failed
    assert annotated == set()

    lines = scan.CONFIG.read_text().splitlines()
    for check in SKIPPED:
        (n,) = [n for n, line in enumerate(lines) if line.strip() == f"- {check}"]
        assert lines[n - 1].strip().startswith("# "), check
