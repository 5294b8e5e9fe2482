"""Create a virtual environment with pip in it, using nothing but the standard library.

Where the system Python has no ``ensurepip`` (Debian and Ubuntu without the
python3-venv package, which needs root to install), the venv is created
without pip and pip is bootstrapped from its wheel on the package index.

Usage: python3 scripts/mkvenv.py .venv
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import venv
from pathlib import Path

MIN_PYTHON = (3, 11)
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def has_pip(python: Path) -> bool:
    probe = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, check=False)
    return probe.returncode == 0


def latest_pip_wheel(index: str) -> tuple[str, str, str]:
    """(file name, URL, sha256) of the newest final pip wheel on the index."""
    request = urllib.request.Request(f"{index}/pip/", headers={"Accept": SIMPLE_JSON})
    with urllib.request.urlopen(request, timeout=60) as reply:
        files = json.load(reply)["files"]
    best: tuple[tuple[int, ...], dict] | None = None
    for entry in files:
        match = re.fullmatch(r"pip-(\d+(?:\.\d+)*)-py3-none-any\.whl", entry["filename"])
        if match and not entry.get("yanked"):
            version = tuple(int(part) for part in match.group(1).split("."))
            if best is None or version > best[0]:
                best = (version, entry)
    if best is None:
        raise SystemExit(f"no pip wheel found on {index}")
    entry = best[1]
    return entry["filename"], entry["url"], entry["hashes"]["sha256"]


def bootstrap_pip(python: Path) -> None:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    name, url, sha256 = latest_pip_wheel(index)
    with tempfile.TemporaryDirectory() as folder:
        wheel = Path(folder) / name
        with urllib.request.urlopen(url, timeout=120) as reply:
            wheel.write_bytes(reply.read())
        if hashlib.sha256(wheel.read_bytes()).hexdigest() != sha256:
            raise SystemExit(f"{name}: checksum mismatch")
        # A pip wheel can run itself: python pip.whl/pip install pip.whl
        subprocess.run([python, f"{wheel}/pip", "install", "--quiet", str(wheel)], check=True)


def main(target: Path) -> None:
    if sys.version_info < MIN_PYTHON:
        raise SystemExit(
            f"Shorty needs Python {'.'.join(map(str, MIN_PYTHON))}+;"
            f" this is {sys.version.split()[0]} (run make with PYTHON=python3.x)"
        )
    python = target / "bin" / "python"
    if python.exists() and has_pip(python):
        return
    try:
        if os.environ.get("SHORTY_VENV_WITHOUT_ENSUREPIP"):  # lets the fallback be exercised
            raise subprocess.CalledProcessError(1, "ensurepip")
        venv.create(target, with_pip=True, clear=True)
        return
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"ensurepip is not available ({exc}); bootstrapping pip from the package index")
    venv.create(target, with_pip=False, clear=True)
    bootstrap_pip(python)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".venv"))
