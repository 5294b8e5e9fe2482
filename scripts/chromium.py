"""Link Chromium at ``.venv/bin/chromium`` for the browser tests (tests/ui).

The tests drive Debian's ``chromium`` with Playwright (PyPI ``playwright``, in the dev
extra; Playwright's own browser download is not reachable here). Chromium needs some
hundred libraries of the system, so it is not unpacked into the project as promtool
is: in order,

1. a ``chromium`` (or ``chromium-browser``) already on PATH: linked;
2. else, as root with apt-get: ``apt-get install --no-install-recommends chromium``
   (after ``apt-get update`` when the package is not known yet), then linked;
3. else one line saying why, exit 0: the build goes on and the browser tests skip
   with a line naming the package (they fail instead where CI=true).

Running it again with a working Chromium linked does nothing.

Usage: python3 scripts/chromium.py [.venv/bin/chromium]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "chromium"  # Debian's
DEFAULT_TARGET = Path(".venv") / "bin" / "chromium"
NAMES = ("chromium", "chromium-browser")


def works(chromium: Path | str) -> bool:
    try:
        done = subprocess.run(
            [str(chromium), "--headless", "--no-sandbox", "--version"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and "Chromium" in done.stdout


def on_path(target: Path) -> str | None:
    """A Chromium on PATH other than the target itself (the venv's bin may be on PATH)."""
    for name in NAMES:
        found = shutil.which(name)
        if found is not None and Path(found).resolve() != target.resolve():
            return found
    return None


def apt_install() -> str | None:
    """Install Debian's package; the reason when that was impossible."""
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return "apt-get not found (not a Debian-like system)"
    if os.geteuid() != 0:
        return "not root, so apt-get cannot install it"
    install = [apt_get, "install", "-y", "-q", "--no-install-recommends", PACKAGE]
    environ = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    reason = ""
    for attempt in ("installed", "updated"):
        try:
            if attempt == "updated":  # the package list may not know it yet
                subprocess.run(
                    [apt_get, "update", "-q"], capture_output=True, check=True, timeout=600
                )
            subprocess.run(
                install, capture_output=True, text=True, check=True, timeout=900, env=environ
            )
            return None
        except subprocess.CalledProcessError as error:
            said = (error.stderr or error.stdout or "").strip().splitlines()
            reason = f"`apt-get install {PACKAGE}` failed: {said[-1] if said else error}"
        except subprocess.TimeoutExpired as error:
            reason = f"`{' '.join(map(str, error.cmd))}` took longer than {error.timeout:g} s"
    return reason


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else DEFAULT_TARGET
    if works(target):
        return 0
    found = on_path(target)
    reason = None
    if found is None:
        reason = apt_install()
        found = on_path(target)
    if found is not None and works(found):
        target.unlink(missing_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(found)
        print(f"chromium: {target} -> {found}")
        return 0
    target.unlink(missing_ok=True)
    print(
        f"chromium: not installed ({reason or 'the one found does not run'}); the browser"
        f" tests will skip: install Debian's package `{PACKAGE}` (apt-get install {PACKAGE})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
