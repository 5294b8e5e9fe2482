"""The redirect service as production runs it (`shorty serve redirect`, uvicorn)."""

from __future__ import annotations

import redis

from shorty.redirect.clicks import STREAM
from tests.e2e.processes import Service, get, sample, scrape, service_env
from tests.helpers import free_port, query


def test_sigterm_flushes_every_buffered_click(clean, tmp_path):
    query(
        clean.database_url,
        "INSERT INTO urls (code, target) VALUES ('sigterm', 'https://t.example')",
    )
    env = service_env(
        clean.database_url,
        clean.redis_url,
        SHORTY_CLICK_FLUSH_INTERVAL="60",  # nothing leaves the buffer before SIGTERM
        SHORTY_CLICK_BATCH="10000",
        SHORTY_ACCESS_LOG="true",
        SHORTY_LOG_LEVEL="INFO",
    )
    log = tmp_path / "redirect.log"
    server = Service("redirect", env, log, metrics_port=free_port())
    try:
        for _ in range(73):
            status, headers, _ = get(server.port, "/sigterm")
            assert status == 302
            assert headers["location"] == "https://t.example"
        stream = redis.Redis.from_url(clean.redis_url)
        assert stream.xlen(STREAM) == 0
        metrics = scrape(server.metrics_port)
        assert sample(metrics, "shorty_redirect_lookups_total", tier="lru", result="hit") == 72
        # A clean stop exits 0 (uvicorn would re-raise the signal: -15; issue #14).
        assert server.stop() == 0
        assert stream.xlen(STREAM) == 73
        stream.close()
    finally:
        if server.process.poll() is None:
            server.kill()
    access = [line for line in log.read_text().splitlines() if '"logger":"shorty.request"' in line]
    assert len(access) == 73  # the redirects (probes are not logged; metrics have their port)
