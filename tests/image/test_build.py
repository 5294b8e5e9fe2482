"""The image, built for real with buildah (`make image-test`, not `make test`: about
four minutes on two cores, most of it debootstrap and pip).

No registry is reachable here, so the Dockerfile's BASE is a local Debian bookworm
with Debian's python3 (scripts/image-base.sh), and the PostgreSQL client is
Debian's 15 (PGDG=false): the shipped image takes 16 from PGDG, which CI's Docker
build checks. Then the image runs as the chart runs it: user 10001, read-only root,
a fresh /tmp."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# buildah's storage, kept between runs (the base is reused while its script is unchanged).
STORAGE = Path(os.environ.get("SHORTY_BUILDAH_ROOT", "/var/tmp/shorty-buildah"))  # noqa: S108
IMAGE = "localhost/shorty:image-test"

pytestmark = [pytest.mark.image, pytest.mark.timeout(1200)]


def buildah(*args: str) -> str:
    command = ["buildah", "--root", f"{STORAGE}/storage", "--runroot", f"{STORAGE}/run"]
    command += ["--storage-driver", "vfs", *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0:
        message = "the image build needs root (buildah with the vfs driver, debootstrap)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    STORAGE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    base = subprocess.run(
        [ROOT / "scripts" / "image-base.sh", str(STORAGE)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    based = time.monotonic()
    buildah(
        "bud", "--isolation", "chroot", "--pull-never", "--layers",
        "--build-arg", f"BASE={base}", "--build-arg", "PGDG=false", "--build-arg", "PG_CLIENT=15",
        "--tag", IMAGE, str(ROOT),
    )  # fmt: skip
    built = time.monotonic()
    print(f"\nbase {base}: {based - started:.0f} s; image: {built - based:.0f} s", file=sys.stderr)
    return IMAGE


@pytest.fixture(scope="module")
def rootfs(image: str) -> Iterator[Path]:
    container = buildah("from", "--pull-never", image).strip()
    try:
        yield Path(buildah("mount", container).strip())
    finally:
        buildah("rm", container)


def run_read_only(rootfs: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in the image as Kubernetes runs it with the chart's securityContext:
    user 10001:10001, the root file system read-only, an empty writable /tmp."""
    script = """
        set -e
        root=$1; shift
        mount --make-rprivate /
        mount --bind "$root" "$root"
        mount -t tmpfs -o mode=1777,size=16m tmpfs "$root/tmp"
        mount --bind /dev "$root/dev"
        mount --bind /proc "$root/proc"
        mount -o remount,bind,ro "$root"
        exec chroot --userspec=10001:10001 "$root" \
            env -i PATH=/opt/venv/bin:/usr/bin:/bin PYTHONDONTWRITEBYTECODE=1 "$@"
    """
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", str(rootfs), *argv],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_config_as_the_chart_expects(image: str) -> None:
    config = json.loads(buildah("inspect", "--type", "image", image))["OCIv1"]["config"]
    assert config["User"] == "10001:10001"
    assert config["WorkingDir"] == "/app"
    assert config["Entrypoint"] == ["shorty"]
    assert config["Cmd"] == ["--help"]
    assert "Healthcheck" not in config
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert set(config["ExposedPorts"]) == {"8000/tcp", "8080/tcp"}


def test_no_compilers_no_pip_no_sources(rootfs: Path) -> None:
    for path in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make", "opt/venv/bin/pip", "wheels", "src"):
        assert not (rootfs / path).exists(), path
    assert (rootfs / "opt/venv/bin/shorty").is_file()
    assert (rootfs / "app").is_dir()
    # The operator extra is in, the embedded and dev extras are not.
    site = next((rootfs / "opt/venv/lib").glob("python3.*/site-packages"))
    assert (site / "kopf").is_dir()
    assert not (site / "pgserver").exists()
    assert not (site / "pytest").exists()
    # The web app's pages are package data: in the image, or /ui has nothing to show.
    assert (site / "shorty/ui/templates/base.html").is_file()
    assert (site / "shorty/ui/static/ui.css").is_file()


def test_the_user_owns_nothing_outside_tmp(rootfs: Path) -> None:
    """Nothing in the image belongs to 10001: all it may write is the /tmp emptyDir."""
    owned = [
        str(path)
        for top in ("app", "opt", "etc", "usr", "var")
        for path in (rootfs / top).rglob("*")
        if not path.is_symlink() and path.stat().st_uid == 10001
    ]
    assert owned == []


def test_shorty_runs_with_a_read_only_root(rootfs: Path) -> None:
    result = run_read_only(rootfs, "shorty", "--help")
    assert result.returncode == 0, result.stderr
    for command in ("serve", "migrate", "apikey"):
        assert command in result.stdout
    serve = run_read_only(rootfs, "shorty", "serve", "api", "--help")
    assert serve.returncode == 0, serve.stderr
    assert "--port" in serve.stdout


def test_the_operator_runs_with_a_read_only_root(rootfs: Path) -> None:
    result = run_read_only(rootfs, "shorty-operator", "--help")
    assert result.returncode == 0, result.stderr
    assert "--peering" in result.stdout


def test_the_service_refuses_to_start_without_its_settings(rootfs: Path) -> None:
    """Past --help: `shorty serve api` imports the whole service and reads its
    settings in the image, and says which variable is missing (exit 2)."""
    result = run_read_only(rootfs, "shorty", "serve", "api")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SHORTY_DATABASE_URL" in result.stderr


def test_pg_dump_is_there_for_the_backup_job(rootfs: Path) -> None:
    result = run_read_only(rootfs, "pg_dump", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pg_dump (PostgreSQL) 15.")  # PGDG=false: Debian's
    restore = run_read_only(rootfs, "pg_restore", "--version")
    assert restore.returncode == 0, restore.stderr


def test_the_harness_is_read_only_but_for_tmp(rootfs: Path) -> None:
    """What the tests above run in: writing /app fails, writing /tmp works."""
    app = run_read_only(rootfs, "touch", "/app/x")
    assert app.returncode != 0
    assert "Read-only file system" in app.stderr
    tmp = run_read_only(rootfs, "touch", "/tmp/x")  # noqa: S108 (inside the image)
    assert tmp.returncode == 0, tmp.stderr
