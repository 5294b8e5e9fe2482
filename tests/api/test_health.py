import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect


@pytest.mark.parametrize("create_app", [create_api, create_redirect])
def test_live_and_ready(settings, create_app):
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


@pytest.mark.parametrize("create_app", [create_api, create_redirect])
def test_not_ready_without_redis(create_app, settings_without_redis):
    with TestClient(create_app(settings_without_redis)) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["postgres"] == "ok"
        assert body["checks"]["redis"].startswith("failed: ")
