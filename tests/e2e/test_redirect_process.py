"""The redirect service as production runs it (`shorty serve redirect`, uvicorn)."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time

import redis

from shorty.redirect.clicks import STREAM
from tests.e2e.test_dev import free_port
from tests.helpers import query


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), body


def test_sigterm_flushes_every_buffered_click(clean):
    query(
        clean.database_url,
        "INSERT INTO urls (code, target) VALUES ('sigterm', 'https://t.example')",
    )
    port = free_port()
    env = {
        **os.environ,
        "SHORTY_DATABASE_URL": clean.database_url,
        "SHORTY_REDIS_URL": clean.redis_url,
        "SHORTY_CLICK_FLUSH_INTERVAL": "60",  # nothing leaves the buffer before SIGTERM
        "SHORTY_CLICK_BATCH": "10000",
        "SHORTY_SECRET_KEY": "test-secret-key-0123456789",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shorty",
            "serve",
            "redirect",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        status = None
        for _ in range(100):  # bounded wait for the port: 10 s
            try:
                status, _, _ = get(port, "/livez")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200, "the redirect service did not start"
        for _ in range(73):
            status, headers, _ = get(port, "/sigterm")
            assert status == 302
            assert headers["location"] == "https://t.example"
        stream = redis.Redis.from_url(clean.redis_url)
        assert stream.xlen(STREAM) == 0
        status, _, metrics = get(port, "/metrics")
        assert status == 200
        assert b'shorty_redirect_lookups_total{result="hit",tier="lru"} 72.0' in metrics
        server.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal it caught.
        assert server.wait(30) in (0, -signal.SIGTERM)
        assert stream.xlen(STREAM) == 73
        stream.close()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        output = server.stdout.read().decode() if server.stdout else ""
        if server.stdout:
            server.stdout.close()
    access = [line for line in output.splitlines() if '"logger":"shorty.request"' in line]
    assert len(access) == 74  # 73 redirects + /metrics (probes are not logged)
