"""A caller that goes away in the middle of its request (an operator restarting, a
closed tab) is not a server error: the API records a 499, as nginx does, logs no
error and counts no 5xx. Against `shorty serve api` (uvicorn), with a real socket
that sends part of a body and closes."""

import json
import socket

from tests.e2e.processes import Service, sample, scrape, service_env
from tests.helpers import free_port, user_with_key, wait_for

BODY = b'{"target": "https://example.com/a-long-way'  # of the 1,000 bytes announced


def test_a_client_that_disconnects_mid_body_is_a_499_not_a_500(clean, tmp_path):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    env = service_env(
        clean.database_url, clean.redis_url, SHORTY_ACCESS_LOG="true", SHORTY_LOG_LEVEL="INFO"
    )
    log = tmp_path / "api.log"
    api = Service("api", env, log, metrics_port=free_port())
    try:
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as caller:
            head = (
                "POST /api/v1/shorten HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\nX-Request-ID: gone-away\r\n\r\n"
            )
            caller.sendall(head.encode() + BODY)
        records = []

        def access_line():
            records[:] = [
                json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")
            ]
            return next(
                (
                    r
                    for r in records
                    if r.get("http", {}).get("request", {}).get("id") == "gone-away"
                    and "response" in r["http"]
                ),
                None,
            )

        line = wait_for(access_line, 10, "the access line of the request")
        assert line["http"]["response"]["status_code"] == 499
        assert line["message"] == "POST /api/v1/shorten 499"
        assert not [r for r in records if r["log.level"] in ("error", "critical")]
        assert not [r for r in records if "unhandled" in r["message"]]
        went = [r for r in records if "went away" in r["message"]]
        assert [r["log.level"] for r in went] == ["info"]
        assert "error" not in went[0]  # no stack trace
        samples = scrape(api.metrics_port)
        count = "shorty_http_request_duration_seconds_count"
        assert (
            sample(
                samples, count, service="api", route="/api/v1/shorten", method="POST", status="499"
            )
            == 1
        )
        assert not [
            labels
            for (name, labels), value in samples.items()
            if name == count and dict(labels).get("status", "").startswith("5") and value
        ]
    finally:
        api.stop()
