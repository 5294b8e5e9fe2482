"""The API's deadline middleware (shorty.web.deadline): a request that hangs is
answered 503 by its deadline + 0.1 s, a streamed answer is not cut once it started,
and probes are not subject to it."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from shorty.api.app import PAST_DEADLINE
from shorty.resilience import deadline
from shorty.web.deadline import DeadlineMiddleware

SECONDS = 0.3


def exceeded() -> float:
    return REGISTRY.get_sample_value("shorty_deadline_exceeded_total", {"service": "test"}) or 0


async def hung(scope, receive, send):
    """An app whose request waits on something nobody bounds."""
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):  # a body that takes longer than the deadline
            await asyncio.sleep(SECONDS / 2)
            await send({"type": "http.response.body", "body": b"page\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/livez":
        assert deadline.current() is None
        await asyncio.sleep(SECONDS * 1.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    await asyncio.Event().wait()


def app():
    return DeadlineMiddleware(
        hung, service="test", seconds=SECONDS, answer=PAST_DEADLINE, skip_paths={"/livez"}
    )


def test_a_hung_request_is_answered_503_by_its_deadline():
    before = exceeded()
    client = TestClient(app())  # not entered: the app has no lifespan
    started = time.monotonic()
    response = client.get("/anything")
    elapsed = time.monotonic() - started
    print(f"hung request answered after {elapsed * 1000:.0f} ms (deadline {SECONDS * 1000:.0f})")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/deadline-exceeded")
    assert SECONDS <= elapsed < SECONDS + 0.1
    assert exceeded() - before == 1


def test_a_started_answer_is_not_cut_and_probes_have_no_budget():
    client = TestClient(app())
    streamed = client.get("/stream")
    assert streamed.status_code == 200
    assert streamed.text == "page\n" * 3  # 0.45 s in all: past the deadline, whole
    assert client.get("/livez").text == "ok"
