"""The GitHub workflows: valid against their schema (check-jsonschema's copy of
SchemaStore's, offline), every action pinned to a commit, least privilege, and CI
running the same make targets as here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def check_jsonschema(*paths: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert binary, "check-jsonschema is in the dev extra"
    command = [binary, "--builtin-schema", "vendor.github-workflows", *map(str, paths)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_there_are_ci_and_cd() -> None:
    assert [path.name for path in WORKFLOWS] == ["cd.yml", "ci.yml"]


def test_workflows_match_the_schema() -> None:
    result = check_jsonschema(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    # `runs-on` missing, and `step` instead of `steps`.
    broken.write_text("on: push\njobs:\n  build:\n    step:\n      - run: make test\n")
    result = check_jsonschema(broken)
    assert result.returncode == 1, result.stdout


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actions_are_pinned_to_a_commit(path: Path) -> None:
    uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
    assert uses
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.search(r"#\s*v\d+\.\d+\.\d+", comment), f"{action}: say the version"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_least_privilege(path: Path) -> None:
    """Read-only by default at the top; a job that writes says so for itself."""
    workflow = load(path)
    assert workflow["permissions"] in ({}, {"contents": "read"})
    for name, job in workflow["jobs"].items():
        granted = job.get("permissions", workflow["permissions"])
        writes = {scope for scope, level in granted.items() if level == "write"}
        assert writes <= {"packages"}, name
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name


def test_ci_runs_the_make_targets() -> None:
    runs = " ".join(
        step.get("run", "") for job in load(ROOT / ".github/workflows/ci.yml")["jobs"].values()
        for step in job["steps"]
    )  # fmt: skip
    makefile = (ROOT / "Makefile").read_text()
    for target in ("test", "image-lint", "image-test"):
        assert f"make {target}" in runs, target
        assert re.search(rf"^{target}:", makefile, re.MULTILINE), target


def test_cd_publishes_the_commit_ci_tested() -> None:
    cd = load(ROOT / ".github/workflows/cd.yml")
    trigger = cd[True]  # YAML 1.1 reads the key `on` as true
    assert trigger["workflow_run"]["workflows"] == ["ci"]
    assert trigger["workflow_run"]["branches"] == ["main"]
    image = cd["jobs"]["image"]
    assert "conclusion == 'success'" in image["if"]
    push = next(step for step in image["steps"] if step.get("id") == "push")
    assert push["with"]["tags"].endswith(":${{ github.event.workflow_run.head_sha }}")
    chart = "\n".join(step.get("run", "") for step in cd["jobs"]["chart"]["steps"])
    assert "helm package charts/shorty" in chart
    assert 'helm push dist/shorty-*.tgz "oci://ghcr.io/' in chart
