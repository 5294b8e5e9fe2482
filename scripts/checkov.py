"""checkov on what Shorty ships: the chart, its rendered scenarios, the Dockerfile, the workflows.

checkov pins old versions of libraries the project also uses, so it lives in its own
venv, ``.venv-checkov``, made here once (pinned version; ~45 s) and kept: running this
again with the same version installed does nothing. Its settings and every skipped
check, each with its reason, are in ``.checkov.yaml``.

Four scans, each must report zero failed checks and a nonzero passed count:

- ``helm`` on charts/shorty: checkov runs ``helm template`` itself, so ``helm`` must be
  on PATH (the venv's, from scripts/helm.py). Without it checkov runs no check and
  still exits 0 ("no runners"), hence the passed count is required, not just no failure.
- ``kubernetes`` on ``helm template`` of the defaults and of every ci/*-values.yaml
  (what the ci scenarios really install, hooks and the test pod included).
- ``dockerfile`` on the Dockerfile; ``github_actions`` on .github/workflows.

Nothing is fetched while scanning: ``--skip-download`` and the two variables in ENV keep
checkov off its vendor's API and off PyPI's update check.

Usage: python3 scripts/checkov.py [--install-only] [--helm .venv/bin/helm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = "3.3.30"
ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-checkov"
STAMP = VENV / f".installed-checkov-{VERSION}"
CONFIG = ROOT / ".checkov.yaml"
CHART = ROOT / "charts" / "shorty"
RELEASE, NAMESPACE = "demo", "shorty"  # as tests/chart renders it
ENV = {"BC_SKIP_MAPPING": "TRUE", "CKV_SKIP_PACKAGE_UPDATE_CHECK": "TRUE"}


def checkov_binary() -> Path:
    return VENV / "bin" / "checkov"


def install() -> Path:
    """``.venv-checkov`` with checkov==VERSION; nothing to do when it is there."""
    if STAMP.exists() and checkov_binary().exists():
        return checkov_binary()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, f"checkov=={VERSION}"], check=True)
    STAMP.touch()
    print(f"checkov {VERSION} -> {checkov_binary()}")
    return checkov_binary()


@dataclass
class Report:
    """What one checkov run found, read from its JSON output."""

    framework: str
    target: str
    passed: int = 0
    failed: list[str] = field(default_factory=list)  # "CKV_X_1 resource (file)"
    ran: bool = False  # checkov reported results for this framework

    def problems(self) -> list[str]:
        if not self.ran:
            return [f"{self.framework} {self.target}: checkov ran no {self.framework} check"]
        out = [f"{self.framework} {self.target}: {finding}" for finding in self.failed]
        if self.passed == 0:
            out.append(f"{self.framework} {self.target}: no check passed")
        return out

    def line(self) -> str:
        return f"{self.framework} {self.target}: {self.passed} passed, {len(self.failed)} failed"


def scan(
    framework: str,
    target: Path,
    *,
    helm: Path | None = None,
    config: Path | None = CONFIG,
    checkov: Path | None = None,
) -> Report:
    """Run checkov's ``framework`` on ``target`` (a file or a directory)."""
    env = {**os.environ, **ENV}
    if helm is not None:
        env["PATH"] = f"{helm.parent}{os.pathsep}{env.get('PATH', '')}"
    # Run from an empty directory: checkov also reads a .checkov.yaml from its working
    # directory, and `config` must be the only settings it gets.
    with tempfile.TemporaryDirectory(prefix="checkov-cwd-") as cwd:
        scanned = target
        if framework == "helm" and target.is_dir():
            # A chart with its symbolic links resolved, as `helm package` ships it
            # (charts/shorty/elk -> ../../elk): Helm logs each link it follows on
            # stderr, and checkov drops a chart whose `helm template` writes anything
            # there ("Failed processing helm chart"), scanning nothing.
            scanned = Path(shutil.copytree(target, Path(cwd) / "chart" / target.name))
        command = [str(checkov or checkov_binary()), "--framework", framework, "--output", "json"]
        command += ["--quiet", "--compact", "--skip-download"]
        command += ["--file" if scanned.is_file() else "--directory", str(scanned)]
        if config is not None:
            command += ["--config-file", str(config)]
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=cwd, env=env, timeout=300
        )
    if result.returncode not in (0, 1):
        raise RuntimeError(
            f"checkov {framework} {target}: exit {result.returncode}\n{result.stderr}"
        )
    report = Report(
        framework, str(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
    )
    parsed: Any = json.loads(result.stdout) if result.stdout.strip() else []
    for run in parsed if isinstance(parsed, list) else [parsed]:
        if not isinstance(run, dict) or run.get("check_type") != framework:
            continue  # checkov's "no runners" answer is a bare summary, without check_type
        report.ran = True
        report.passed += run["summary"]["passed"]
        for check in run["results"]["failed_checks"]:
            report.failed.append(f"{check['check_id']} {check['resource']} ({check['file_path']})")
    if report.failed and result.returncode != 1:
        raise RuntimeError(f"checkov {framework} {target}: failed checks but exit 0")
    return report


def render_scenarios(helm: Path, into: Path) -> list[Path]:
    """``helm template`` of the defaults and each ci/*-values.yaml, one file each."""
    scenarios: list[Path | None] = [None, *sorted((CHART / "ci").glob("*-values.yaml"))]
    files = []
    for values in scenarios:
        command = [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
        command += ["--include-crds", *([] if values is None else ["--values", str(values)])]
        rendered = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
        path = into / f"{'defaults' if values is None else values.stem}.yaml"
        path.write_text(rendered.stdout)
        files.append(path)
    return files


def scan_everything(helm: Path) -> list[Report]:
    if not helm.is_file():
        raise SystemExit(f"{helm} missing: run `make .venv/bin/helm` (scripts/helm.py)")
    with tempfile.TemporaryDirectory(prefix="shorty-rendered-") as tmp:
        render_scenarios(helm, Path(tmp))
        rendered = scan("kubernetes", Path(tmp))
    rendered.target = "helm template of the defaults and ci/*-values.yaml"
    return [
        scan("helm", CHART, helm=helm),
        rendered,
        scan("dockerfile", ROOT / "Dockerfile"),
        scan("github_actions", ROOT / ".github" / "workflows"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--install-only", action="store_true", help="make .venv-checkov, scan nothing"
    )
    parser.add_argument("--helm", type=Path, default=ROOT / ".venv" / "bin" / "helm")
    args = parser.parse_args()
    install()
    if args.install_only:
        return 0
    problems = []
    for report in scan_everything(args.helm.resolve()):
        print(report.line())
        problems += report.problems()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
