import json
import logging

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.obs.logging import configure_logging
from shorty.obs.requestlog import RequestLogMiddleware
from tests.helpers import bearer


@pytest.fixture
def json_lines(capsys):
    def read():
        return [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")
        ]

    yield read
    logging.getLogger().handlers[:] = []


def test_one_json_line_per_request_without_secrets(settings, json_lines):
    configure_logging("INFO", "api")
    with TestClient(create_app(settings)) as client:
        json_lines()  # drop start-up lines
        response = client.get(
            "/api/v1/urls/abc?token=s3cret",
            headers={
                **bearer("shk_secretvalue"),
                "User-Agent": "probe/1",
                "X-Request-ID": "req-42",
            },
        )
        client.get("/livez")  # probes are not logged when they succeed
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "req-42"
    lines = [line for line in json_lines() if line.get("log", {}).get("logger") == "shorty.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["http"]["request"]["method"] == "GET"
    assert line["http"]["request"]["id"] == "req-42"
    assert line["http"]["response"]["status_code"] == 401
    assert line["url"]["path"] == "/api/v1/urls/abc"
    assert line["user_agent"]["original"] == "probe/1"
    assert line["service"]["name"] == "shorty-api"
    assert isinstance(line["event"]["duration"], int)
    assert "s3cret" not in json.dumps(line)
    assert "shk_secretvalue" not in json.dumps(line)


def test_unsafe_request_id_is_replaced(settings, json_lines):
    with TestClient(create_app(settings)) as client:
        response = client.get("/livez", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32


def test_unhandled_error_is_a_500_problem_with_the_request_id(json_lines):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    async def broken(request):
        raise RuntimeError("boom")

    configure_logging("INFO", "api")
    app = Starlette(
        routes=[Route("/broken", broken)],
        middleware=[Middleware(RequestLogMiddleware, service="api")],
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://shorty.dev/problems/internal-error"
    lines = json_lines()
    error = next(line for line in lines if line["message"].startswith("unhandled error"))
    assert error["http"]["request"]["id"] == "trace-me"
    assert error["error"]["type"] == "RuntimeError"
    assert error["error"]["message"] == "boom"
    assert "raise RuntimeError" in error["error"]["stack_trace"]
    access = next(
        line
        for line in lines
        if line["log"]["logger"] == "shorty.request"
        and "status_code" in line.get("http", {}).get("response", {})
    )
    assert access["http"]["response"]["status_code"] == 500


def test_an_ipv4_peer_on_a_dual_stack_listener_is_logged_as_ipv4(settings, json_lines):
    """granian on :: gives an IPv4 peer as ::ffff:a.b.c.d: the API's line says a.b.c.d,
    as the rate limits and the clicks do (web/clientip.py)."""
    configure_logging("INFO", "api")
    with TestClient(create_app(settings), client=("::ffff:198.51.100.7", 5000)) as client:
        json_lines()
        client.get("/api/v1/urls/abc")
    line = next(x for x in json_lines() if x["log"]["logger"] == "shorty.request")
    assert line["client"]["address"] == "198.51.100.7"


def test_redirect_logs_leave_out_the_client_address(settings, json_lines):
    from shorty.redirect.app import create_app as create_redirect

    configure_logging("INFO", "redirect")
    with TestClient(create_redirect(settings), client=("203.0.113.9", 5000)) as client:
        json_lines()
        client.get("/nothere")
    line = next(x for x in json_lines() if x["log"]["logger"] == "shorty.request")
    assert "client" not in line
    assert "203.0.113.9" not in json.dumps(line)


def test_access_log_can_be_switched_off(settings, json_lines):
    configure_logging("INFO", "api")
    quiet = settings.model_copy(update={"access_log": False})
    with TestClient(create_app(quiet)) as client:
        json_lines()
        response = client.get("/api/v1/urls/abc")
    assert response.status_code == 401
    assert response.headers["x-request-id"]  # the id is still returned
    assert [x for x in json_lines() if x["log"]["logger"] == "shorty.request"] == []


def _access(lines):
    return [x for x in lines if x["log"]["logger"] == "shorty.request"]


def test_sampling_keeps_every_error_and_every_slow_request(settings, json_lines):
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def fast(request):
        return PlainTextResponse("ok")

    async def slow(request):
        import asyncio

        await asyncio.sleep(0.6)
        return PlainTextResponse("late")

    async def missing(request):
        return PlainTextResponse("no", status_code=404)

    configure_logging("INFO", "api")
    app = Starlette(
        routes=[Route("/fast", fast), Route("/slow", slow), Route("/missing", missing)],
        middleware=[Middleware(RequestLogMiddleware, service="api", sample=0.0, slow=0.5)],
    )
    with TestClient(app) as client:
        json_lines()
        for path in ("/fast", "/fast", "/slow", "/missing", "/fast"):
            client.get(path)
    logged = [x["url"]["path"] for x in _access(json_lines())]
    assert logged == ["/slow", "/missing"]


def test_sampling_keeps_about_its_share(settings, json_lines):
    quarter = settings.model_copy(update={"access_log_sample": 0.25})
    configure_logging("INFO", "api")
    with TestClient(create_app(quarter)) as client:
        json_lines()
        for _ in range(400):
            client.get("/api/v1/openapi.json")
    logged = len(_access(json_lines()))
    assert 50 <= logged <= 150  # 100 expected; outside: p < 1e-8


def test_access_lines_carry_the_trace_and_the_problem_type(settings, json_lines):
    from shorty.redirect.app import create_app as create_redirect

    trace = "0af7651916cd43dd8448eb211c80319c"
    configure_logging("INFO", "redirect")
    with TestClient(create_redirect(settings)) as client:
        json_lines()
        client.get("/nothere", headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
        client.get("/nothere", headers={"traceparent": "00-not-a-trace"})
        client.get("/nothere")
    traced, malformed, plain = _access(json_lines())
    assert traced["trace"]["id"] == trace
    assert "trace" not in malformed
    assert "trace" not in plain

    configure_logging("INFO", "api")
    with TestClient(create_app(settings)) as client:
        json_lines()
        client.get("/api/v1/urls/abc", headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
        client.get("/api/v1/openapi.json")
    unauthorised, fine = _access(json_lines())
    assert unauthorised["error"]["code"] == "unauthenticated"
    assert unauthorised["trace"]["id"] == trace  # the API continues the caller's trace
    assert "error" not in fine
    assert len(fine["trace"]["id"]) == 32  # or starts its own


def test_the_redirects_own_path_keeps_the_request_logs_rules(settings, clean, json_lines):
    """GET /{code} is observed without the middleware (redirect/app.py): the same
    fields, the same sampling (errors always, others at the rate), the caller's trace."""
    from shorty.redirect.app import create_app as create_redirect
    from tests.redirect.helpers import add_link

    add_link(clean.database_url, "logged")
    trace = "0af7651916cd43dd8448eb211c80319c"
    configure_logging("INFO", "redirect")
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        json_lines()
        redirected = client.get("/logged", headers={"User-Agent": 'say "hi"'})
        client.head("/logged", headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
    get, head = _access(json_lines())
    assert get["message"] == "GET /logged 302"
    assert get["http"]["request"]["id"] == redirected.headers["x-request-id"]
    assert get["http"]["response"]["status_code"] == 302
    assert get["url"]["path"] == "/logged"
    assert get["user_agent"]["original"] == 'say "hi"'
    assert get["service"]["name"] == "shorty-redirect"
    assert isinstance(get["event"]["duration"], int)
    assert "trace" not in get
    assert head["message"] == "HEAD /logged 302"
    assert head["trace"]["id"] == trace

    sampled = settings.model_copy(update={"access_log_sample": 0.0})
    with TestClient(create_redirect(sampled), follow_redirects=False) as client:
        json_lines()
        for _ in range(5):
            client.get("/logged")
        client.get("/missing")
    assert [x["http"]["response"]["status_code"] for x in _access(json_lines())] == [404]
