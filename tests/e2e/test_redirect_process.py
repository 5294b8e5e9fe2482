"""The redirect service as production runs it (`shorty serve redirect`), under uvicorn
and under granian (`--server granian`, SHORTY_SERVER)."""

from __future__ import annotations

import pytest
import redis

from shorty.redirect.clicks import STREAM
from tests.e2e.processes import Service, get, sample, scrape, service_env
from tests.helpers import free_port, query

SERVERS = pytest.mark.parametrize("server", ["uvicorn", "granian"])


@SERVERS
def test_sigterm_flushes_every_buffered_click(clean, tmp_path, server):
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
        SHORTY_SERVER=server,
    )
    log = tmp_path / "redirect.log"
    service = Service("redirect", env, log, metrics_port=free_port())
    try:
        for _ in range(73):
            status, headers, _ = get(service.port, "/sigterm")
            assert status == 302
            assert headers["location"] == "https://t.example"
            assert headers.get("server") == ("granian" if server == "granian" else None)
        stream = redis.Redis.from_url(clean.redis_url)
        assert stream.xlen(STREAM) == 0
        metrics = scrape(service.metrics_port)
        assert sample(metrics, "shorty_redirect_lookups_total", tier="lru", result="hit") == 72
        assert get(service.metrics_port, "/livez")[0] == 200
        assert get(service.port, "/readyz")[0] == 200
        # A clean stop exits 0 (uvicorn would re-raise the signal: -15; issue #14).
        assert service.stop() == 0
        assert stream.xlen(STREAM) == 73
        stream.close()
    finally:
        if service.process.poll() is None:
            service.kill()
    access = [line for line in log.read_text().splitlines() if '"logger":"shorty.request"' in line]
    assert len(access) == 73  # the redirects (probes are not logged; metrics have their port)


@SERVERS
def test_the_client_address_and_x_forwarded_for_from_a_trusted_proxy(clean, tmp_path, server):
    """scope["client"] reaches the click (its network) and the rate limit, and an
    X-Forwarded-For counts only from a trusted proxy (here: the loopback)."""
    query(
        clean.database_url, "INSERT INTO urls (code, target) VALUES ('where', 'https://w.example')"
    )
    stream = redis.Redis.from_url(clean.redis_url)
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    for trusted in ("", "127.0.0.1/32"):
        env = service_env(
            clean.database_url,
            clean.redis_url,
            SHORTY_SERVER=server,
            SHORTY_TRUSTED_PROXIES=trusted,
            SHORTY_REDIRECT_RATE="1",
            SHORTY_REDIRECT_BURST="1",
        )
        service = Service("redirect", env, tmp_path / f"redirect{trusted[:3]}.log")
        try:
            status, headers, _ = get(service.port, "/where", headers=forwarded)
            assert status == 302
            assert headers.get("server") == ("granian" if server == "granian" else None)
            # The second within the second: over the rate of whoever the client is.
            assert get(service.port, "/where", headers=forwarded)[0] == 429
            assert service.stop() == 0
        finally:
            service.kill()
    networks = [fields[b"net"] for _, fields in stream.xrange(STREAM)]
    stream.close()
    assert networks == [b"127.0.0.0", b"203.0.113.0"]
