"""Put ``promtool`` at ``.venv/bin/promtool`` for the alert-rule tests (tests/dashboards).

promtool ships with Debian's ``prometheus`` package (2.42 on these machines); no PyPI or
npm package carries it. In order:

1. a ``promtool`` already on PATH (say, the package installed with apt-get): linked;
2. else ``apt-get download prometheus``, which needs no root: the .deb lands in a
   temporary folder, ``dpkg-deb -x`` unpacks it there, and ``usr/bin/promtool`` alone
   is copied to the target (Prometheus itself is not installed, nothing else kept);
3. else (no apt-get, no package list, no network): one line saying so, exit 0 — the
   build goes on and the rule tests skip with a line naming the package (they fail
   instead where CI=true).

Running it again with a working promtool in place does nothing.

Usage: python3 scripts/promtool.py [.venv/bin/promtool]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "prometheus"  # Debian's; its promtool is what the tests call
DEFAULT_TARGET = Path(".venv") / "bin" / "promtool"


def works(promtool: Path | str) -> bool:
    try:
        done = subprocess.run(
            [str(promtool), "--version"], capture_output=True, text=True, timeout=30
        )
    except OSError:
        return False
    return done.returncode == 0 and "promtool" in done.stdout


def on_path(target: Path) -> str | None:
    """A promtool on PATH other than the target itself (the venv's bin may be on PATH)."""
    found = shutil.which("promtool")
    if found is None or Path(found).resolve() == target.resolve():
        return None
    return found


def from_debian_package(target: Path) -> str | None:
    """Copy promtool out of the downloaded package; the reason when that was impossible."""
    apt_get, dpkg_deb = shutil.which("apt-get"), shutil.which("dpkg-deb")
    if apt_get is None or dpkg_deb is None:
        return "apt-get or dpkg-deb not found (not a Debian-like system)"
    with tempfile.TemporaryDirectory(prefix="promtool-") as folder:
        work = Path(folder)
        try:
            subprocess.run(
                [apt_get, "download", PACKAGE],
                cwd=work,
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
        except subprocess.CalledProcessError as error:
            said = (error.stderr or error.stdout or "").strip().splitlines()
            return f"`apt-get download {PACKAGE}` failed: {said[-1] if said else error}"
        except subprocess.TimeoutExpired:
            return f"`apt-get download {PACKAGE}` took longer than 300 s"
        debs = sorted(work.glob(f"{PACKAGE}_*.deb"))
        if not debs:
            return f"`apt-get download {PACKAGE}` left no {PACKAGE}_*.deb"
        unpacked = work / "unpacked"
        subprocess.run([dpkg_deb, "-x", str(debs[-1]), str(unpacked)], check=True, timeout=300)
        binary = unpacked / "usr" / "bin" / "promtool"
        if not binary.is_file():
            return f"{debs[-1].name} has no usr/bin/promtool"
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        shutil.copyfile(binary, partial)
        partial.chmod(0o755)
        os.replace(partial, target)  # never a half-copied promtool at the target
    return None


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else DEFAULT_TARGET
    if works(target):
        return 0
    found = on_path(target)
    if found is not None and works(found):
        target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(found)
        print(f"promtool: {target} -> {found}")
        return 0
    reason = from_debian_package(target)
    if reason is None and works(target):
        print(f"promtool: {target}, from Debian's package `{PACKAGE}`")
        return 0
    target.unlink(missing_ok=True)
    print(
        f"promtool: not installed ({reason or 'the copied binary does not run'}); the alert-rule"
        f" tests will skip: install Debian's package `{PACKAGE}` (apt-get install {PACKAGE})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
