"""``shorty-operator``'s command line: where it answers liveness probes, and what it
says when it cannot (no cluster needed: it stops before logging in)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from shorty.settings import METRICS_PORTS
from shorty_operator.cli import LIVENESS, main
from tests.e2e.processes import get
from tests.helpers import free_port, wait_for


def operator_command(*args: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """``shorty-operator`` with ``args``, no metrics listener and no cluster to find."""
    env = {
        **os.environ,
        "SHORTY_OPERATOR_API_KEY": "shk_" + "0" * 40,
        "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
    }
    command = [sys.executable, "-m", "shorty_operator", "--api-url", "http://127.0.0.1:9"]
    return [*command, "--metrics-port", "0", "--standalone", *args], env


def operator(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run it to its end (which, with no cluster, only a refused option brings)."""
    command, env = operator_command(*args, tmp_path=tmp_path)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def shorty_dev_ports() -> set[int]:
    """The ports `shorty dev` (`make run`) serves on by default, as its --help says."""
    shorty = Path(sys.executable).parent / "shorty"
    shown = subprocess.run([shorty, "dev", "--help"], capture_output=True, text=True, check=True)
    found = re.findall(r"--[a-z-]*port INTEGER\s.*?\[default: (\d+)\]", shown.stdout)
    assert len(found) == 2, shown.stdout  # the API's and the redirects'
    return {int(port) for port in found}


def test_the_liveness_port_is_one_no_other_part_of_shorty_uses():
    operator_metrics = next(p.default for p in main.params if p.name == "metrics_port")
    taken = shorty_dev_ports() | set(METRICS_PORTS.values()) | {operator_metrics}
    assert 8080 in taken  # what the operator's probes used to share with the redirects
    default = next(p.default for p in main.params if p.name == "liveness")
    assert default == LIVENESS
    assert urlsplit(LIVENESS).port == 8081
    assert urlsplit(LIVENESS).port not in taken


def test_a_busy_liveness_port_stops_the_operator_with_one_line(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        done = operator("--liveness", f"http://127.0.0.1:{port}/healthz", tmp_path=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"Error: cannot answer liveness probes on 127.0.0.1:{port}: Address already in use; "
        "choose another --liveness ('' to turn off)"
    ]
    assert done.stdout == ""  # stopped before it started anything


def test_a_liveness_port_taken_on_one_interface_is_busy_on_all(tmp_path):
    """As the laptop pairing had it: the redirects on 127.0.0.1:8080, probes on 0.0.0.0."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        done = operator("--liveness", f"http://0.0.0.0:{port}/healthz", tmp_path=tmp_path)
    assert done.returncode == 1
    assert f"cannot answer liveness probes on 0.0.0.0:{port}" in done.stderr
    assert len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "endpoint", ["https://0.0.0.0:8081/healthz", "0.0.0.0:8081", "http://h:x/"]
)
def test_a_liveness_endpoint_kopf_cannot_serve_is_a_usage_error(endpoint, tmp_path):
    done = operator("--liveness", endpoint, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "Invalid value for --liveness: must be an http:// URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_free_liveness_port_is_left_free_for_kopf(tmp_path):
    """The check binds and lets go: kopf then answers probes there (even with no
    cluster to log in to, which it keeps trying)."""
    port = free_port()
    liveness = f"http://127.0.0.1:{port}/healthz"
    command, env = operator_command("--liveness", liveness, tmp_path=tmp_path)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:

        def answers() -> bool:
            assert process.poll() is None, process.communicate()[1]
            try:
                return get(port, "/healthz")[0] == 200
            except OSError:
                return False

        wait_for(answers, 30, "kopf's liveness endpoint")
    finally:
        process.kill()
        process.communicate()


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_an_api_timeout_below_a_tenth_of_a_second_is_a_usage_error(value, tmp_path):
    done = operator("--api-timeout", value, tmp_path=tmp_path)
    assert done.returncode == 2
    assert "Invalid value for '--api-timeout'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_api_timeout_is_read_from_the_environment(tmp_path):
    command, env = operator_command(tmp_path=tmp_path)
    env["SHORTY_OPERATOR_API_TIMEOUT"] = "0"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Invalid value for '--api-timeout'" in done.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--breaker-threshold", "0"), ("--breaker-cooldown", "-1"), ("--breaker-cooldown", "soon")],
)
def test_a_breaker_option_out_of_range_is_a_usage_error(option, value, tmp_path):
    done = operator(option, value, tmp_path=tmp_path)
    assert done.returncode == 2
    assert f"Invalid value for '{option}'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_breaker_options_are_read_from_the_environment(tmp_path):
    command, env = operator_command(tmp_path=tmp_path)
    env["SHORTY_OPERATOR_BREAKER_THRESHOLD"] = "0"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Invalid value for '--breaker-threshold'" in done.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("OTEL_PROPAGATORS", "bogus"),  # read as OpenTelemetry's instrumentation is imported
        ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "abc"),  # as its SDK is
    ],
)
def test_a_bad_otel_variable_is_a_usage_error(name, value, tmp_path):
    """Also those OpenTelemetry reads as it is imported: that is once they are checked."""
    command, env = operator_command(tmp_path=tmp_path)
    env[name] = value
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith(
        f"Error: invalid settings: {name}: {value} is not"
    )
    assert "Traceback" not in done.stderr
