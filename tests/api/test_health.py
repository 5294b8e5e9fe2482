import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect


@pytest.mark.parametrize("create_app", [create_api, create_redirect])
def test_live_and_ready(settings, create_app):
    with TestClient(create_app(settings)) as client:
        live = client.get("/livez")
        assert live.json()["status"] == "ok"
        assert 0 <= live.json()["loop_lag_seconds"] < settings.liveness_max_lag
        assert live.headers["cache-control"] == "no-store"
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "checks": {"postgres": "up", "redis": "up"},
            "breakers": {"postgres": "closed", "redis": "closed"},
        }
        assert ready.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("create_app", [create_api, create_redirect])
def test_ready_without_redis(create_app, settings_without_redis):
    # Issue #14: both serve without Redis, so both stay ready (this was a 503).
    with TestClient(create_app(settings_without_redis)) as client:
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "ready"
        assert body["checks"] == {"postgres": "up", "redis": "down"}
        assert body["errors"]["redis"] in {"ConnectionError", "TimeoutError"}
        assert body["breakers"]["postgres"] == "closed"
