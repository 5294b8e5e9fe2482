"""`shorty dev` as a person runs it: start, shorten with the printed key, follow, stop, rerun."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from tests.conftest import ROOT
from tests.e2e.processes import Dev, request, usual_metrics_ports_taken
from tests.helpers import free_port, scalar

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def _usual_metrics_ports_taken() -> Iterator[None]:
    with usual_metrics_ports_taken():
        yield


def test_dev_serves_the_printed_curl_and_reuses_data_on_rerun():
    data_dir = ROOT / ".shorty-data" / f"e2e-{secrets.token_hex(3)}"
    api_port, redirect_port = free_port(), free_port()
    try:
        dev = Dev(data_dir, api_port, redirect_port)
        try:
            dev.wait_for("Press Ctrl-C to stop.")
            key = re.search(r"API key\s+(shk_\w+)", dev.output).group(1)
            assert re.search(r"Admin login\s+admin@shorty.localhost / \S+", dev.output)
            assert f"curl -s -X POST http://127.0.0.1:{api_port}/api/v1/shorten" in dev.output
            target = re.search(r"-d '(\{.*\})'", dev.output).group(1)

            status, _, body = request(api_port, "POST", "/api/v1/shorten", json.loads(target), key)
            assert status == 201, body
            link = json.loads(body)
            assert link["short_url"] == f"http://127.0.0.1:{redirect_port}/{link['code']}"

            status, headers, _ = request(redirect_port, "GET", f"/{link['code']}")
            assert status == 302
            assert headers["location"] == "https://example.com/a/long/path"

            for _ in range(100):  # the worker counts the click (bounded wait: 10 s)
                _, _, meta = request(api_port, "GET", f"/api/v1/urls/{link['code']}", key=key)
                if json.loads(meta)["click_count"] == 1:
                    break
                time.sleep(0.1)
            assert json.loads(meta)["click_count"] == 1
            metrics_of_each_service(dev, api_port, redirect_port)
        finally:
            code = dev.stop()
        assert code == 0, dev.output
        assert dev.output.rstrip().endswith("Stopped.")
        assert not (data_dir / "postgres" / "postmaster.pid").exists()

        again = Dev(data_dir, api_port, redirect_port)
        try:
            again.wait_for("Press Ctrl-C to stop.")
            assert f"API key      {key}" in again.output
            status, headers, _ = request(redirect_port, "GET", f"/{link['code']}")
            assert status == 302
        finally:
            assert again.stop() == 0
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def metrics_of_each_service(dev: Dev, api_port: int, redirect_port: int) -> None:
    """Each service's metrics on the port the banner printed, bound on --host (127.0.0.1)
    like everything else `shorty dev` serves; none on the public ports."""
    from tests.e2e.processes import listening, sample, scrape

    services = [p for p in psutil.Process(dev.process.pid).children() if "serve" in p.cmdline()]
    assert len(services) == 3
    addresses = [address for child in services for address in listening(child.pid)]
    assert addresses == ["127.0.0.1"] * 5  # api, redirect and the three metrics listeners
    assert request(api_port, "GET", "/metrics")[0] == 404
    assert request(redirect_port, "GET", "/metrics")[0] == 404
    printed = re.findall(r"http://127\.0\.0\.1:(\d+)/metrics   \((\w+)\)", dev.output)
    ports = {service: int(port) for port, service in printed}
    assert sorted(ports) == ["api", "redirect", "worker"]
    api = scrape(ports["api"])
    count = "shorty_http_request_duration_seconds_count"
    assert (
        sample(api, count, service="api", route="/api/v1/shorten", method="POST", status="201") == 1
    )  # the shorten
    redirect = scrape(ports["redirect"])
    hits = [
        value
        for (name, labels), value in redirect.items()
        if name == "shorty_redirect_lookups_total" and ("result", "hit") in labels
    ]
    assert sum(hits) == 1  # the redirect followed (/metrics was a miss)
    assert sample(scrape(ports["worker"]), "shorty_clicks_ingested_total") == 1


def test_dev_uses_the_servers_named_by_the_variables(clean):
    data_dir = ROOT / ".shorty-data" / f"e2e-{secrets.token_hex(3)}"
    api_port, redirect_port = free_port(), free_port()
    env = {"SHORTY_DATABASE_URL": clean.database_url, "SHORTY_REDIS_URL": clean.redis_url}
    dev = Dev(data_dir, api_port, redirect_port, env)
    try:
        dev.wait_for("Press Ctrl-C to stop.")
        assert "Starting embedded" not in dev.output
        assert not (data_dir / "postgres").exists()
        key = re.search(r"API key\s+(shk_\w+)", dev.output).group(1)
        body = {"target": "https://example.com/external"}
        status, _, reply = request(api_port, "POST", "/api/v1/shorten", body, key)
        assert status == 201, reply
        code = json.loads(reply)["code"]
        # The link landed in the database the variables named.
        assert scalar(clean.database_url, "SELECT target FROM urls WHERE code = $1", code) == (
            "https://example.com/external"
        )
    finally:
        assert dev.stop() == 0
        shutil.rmtree(data_dir, ignore_errors=True)


def test_dev_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "shorty",
                "dev",
                "--api-port",
                str(port),
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use; choose another with --api-port" in result.stderr


def test_dev_embeds_only_what_is_missing_honours_the_initial_key_and_stops_on_sigterm(clean):
    data_dir = ROOT / ".shorty-data" / f"e2e-{secrets.token_hex(3)}"
    api_port, redirect_port = free_port(), free_port()
    initial = "initial-key-for-e2e-0123456789"
    env = {"SHORTY_REDIS_URL": clean.redis_url, "SHORTY_INITIAL_API_KEY": initial}
    dev = Dev(data_dir, api_port, redirect_port, env)
    try:
        dev.wait_for("Press Ctrl-C to stop.")
        assert f"Starting embedded PostgreSQL under {data_dir} ..." in dev.output
        assert (data_dir / "postgres").exists()
        assert not (data_dir / "redis.rdb").exists()
        body = {"target": "https://example.com/initial"}
        status, _, reply = request(api_port, "POST", "/api/v1/shorten", body, initial)
        assert status == 201, reply
        children = psutil.Process(dev.process.pid).children()
        assert len(children) == 3  # api, redirect, worker
        dev.process.send_signal(signal.SIGTERM)
        assert dev.process.wait(60) == 0
        assert not any(child.is_running() and child.status() != "zombie" for child in children)
        assert dev.output.rstrip().endswith("Stopped.")
    finally:
        dev.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
