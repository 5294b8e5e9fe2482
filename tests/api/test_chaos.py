"""The fault-injection routes (issue #14, "Fault injection for experiments"): who may
use them, what they refuse, and the history they keep. What an experiment does to
the services is tests/chaos/test_experiments.py."""

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.settings import Settings
from tests.api.helpers import problem
from tests.conftest import PUBLIC_URL
from tests.helpers import bearer, scalar

CHAOS = "/api/v1/admin/chaos"
OUTAGE = {"dependency": "redis", "kind": "outage", "seconds": 30}


@pytest.fixture
def chaos_api(clean):
    settings = Settings(
        database_url=clean.database_url,
        redis_url=clean.redis_url,
        public_url=PUBLIC_URL,
        chaos_enabled=True,
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_only_admins_reach_the_routes(chaos_api, ada, admin, clean):
    for method, path, body in (
        ("POST", CHAOS, OUTAGE),
        ("GET", CHAOS, None),
        ("POST", f"{CHAOS}/1/stop", None),
    ):
        problem(chaos_api.request(method, path, json=body), 401, "unauthenticated")
        refused = chaos_api.request(method, path, json=body, headers=bearer(ada[1]))
        problem(refused, 403, "insufficient-scope")
    assert scalar(clean.database_url, "SELECT count(*) FROM chaos_experiments") == 0
    started = chaos_api.post(CHAOS, json=OUTAGE, headers=bearer(admin[1]))
    assert started.status_code == 201, started.text
    assert started.json()["active"] is True


def test_off_unless_enabled(api, admin, ada, clean):
    """The default: an admin is told it is off (404), others learn nothing more than
    on any admin route, and nothing is stored."""
    for method, path, body in (
        ("POST", CHAOS, OUTAGE),
        ("GET", CHAOS, None),
        ("POST", f"{CHAOS}/1/stop", None),
    ):
        off = problem(
            api.request(method, path, json=body, headers=bearer(admin[1])), 404, "chaos-disabled"
        )
        assert "SHORTY_CHAOS_ENABLED" in off["detail"]
        problem(api.request(method, path, json=body), 401, "unauthenticated")
        problem(
            api.request(method, path, json=body, headers=bearer(ada[1])), 403, "insufficient-scope"
        )
    assert scalar(clean.database_url, "SELECT count(*) FROM chaos_experiments") == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"dependency": "mysql", "kind": "outage", "seconds": 5}, "outage.dependency"),
        ({"dependency": "redis", "kind": "flood", "seconds": 5}, "(body)"),
        ({"dependency": "redis", "seconds": 5}, "(body)"),
        ({"dependency": "redis", "kind": "outage", "seconds": 0}, "outage.seconds"),
        ({"dependency": "redis", "kind": "outage", "seconds": 3601}, "outage.seconds"),
        ({"dependency": "redis", "kind": "outage", "seconds": "30"}, "outage.seconds"),
        ({"dependency": "redis", "kind": "outage"}, "outage.seconds"),
        ({"dependency": "redis", "kind": "latency", "seconds": 5}, "latency.latency_ms"),
        (
            {"dependency": "redis", "kind": "latency", "seconds": 5, "latency_ms": 0},
            "latency.latency_ms",
        ),
        (
            {"dependency": "redis", "kind": "latency", "seconds": 5, "latency_ms": 60_001},
            "latency.latency_ms",
        ),
        ({"dependency": "postgres", "kind": "error", "seconds": 5}, "error.rate"),
        ({"dependency": "postgres", "kind": "error", "seconds": 5, "rate": 1.5}, "error.rate"),
        ({"dependency": "postgres", "kind": "error", "seconds": 5, "rate": -0.1}, "error.rate"),
        (  # a field another kind takes
            {"dependency": "postgres", "kind": "outage", "seconds": 5, "rate": 0.5},
            "outage.rate",
        ),
        ([], "(body)"),
    ],
)
def test_bad_experiments_are_refused_with_the_field(chaos_api, admin, clean, body, field):
    refused = problem(
        chaos_api.post(CHAOS, json=body, headers=bearer(admin[1])), 422, "validation-failed"
    )
    assert field in [error["field"] for error in refused["errors"]], refused
    assert scalar(clean.database_url, "SELECT count(*) FROM chaos_experiments") == 0


def test_bad_ids_and_bodies(chaos_api, admin):
    problem(
        chaos_api.post(f"{CHAOS}/99/stop", headers=bearer(admin[1])), 404, "experiment-not-found"
    )
    problem(chaos_api.post(f"{CHAOS}/x/stop", headers=bearer(admin[1])), 404, "not-found")
    problem(chaos_api.get(f"{CHAOS}?limit=0", headers=bearer(admin[1])), 422, "validation-failed")
    garbled = chaos_api.post(
        CHAOS, content=b"{", headers={**bearer(admin[1]), "content-type": "application/json"}
    )
    problem(garbled, 400, "malformed-json")


def test_start_list_stop_and_one_at_a_time(chaos_api, admin):
    key = bearer(admin[1])
    latency = {"dependency": "postgres", "kind": "latency", "seconds": 60, "latency_ms": 250}
    first = chaos_api.post(CHAOS, json=latency, headers=key).json()
    assert first["latency_ms"] == 250
    assert first["rate"] is None
    assert first["active"] is True
    assert first["created_by"] == admin[0]
    # A second one on the same dependency waits for the first to end...
    errors = {"dependency": "postgres", "kind": "error", "seconds": 60, "rate": 0.5}
    running = problem(chaos_api.post(CHAOS, json=errors, headers=key), 409, "experiment-running")
    assert f"#{first['id']}" in running["detail"]
    # ... one on the other dependency does not.
    second = chaos_api.post(CHAOS, json=OUTAGE, headers=key)
    assert second.status_code == 201, second.text
    listed = chaos_api.get(CHAOS, headers=key).json()["items"]
    assert [(e["id"], e["active"]) for e in listed] == [
        (second.json()["id"], True),
        (first["id"], True),
    ]
    stopped = chaos_api.post(f"{CHAOS}/{first['id']}/stop", headers=key)
    assert stopped.status_code == 200
    assert stopped.json()["stopped_at"] is not None
    assert stopped.json()["active"] is False
    again = chaos_api.post(f"{CHAOS}/{first['id']}/stop", headers=key)  # idempotent
    assert again.json()["stopped_at"] == stopped.json()["stopped_at"]
    replaced = chaos_api.post(CHAOS, json=errors, headers=key)
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["rate"] == 0.5
    listed = chaos_api.get(f"{CHAOS}?limit=2", headers=key).json()["items"]
    assert [e["id"] for e in listed] == [replaced.json()["id"], second.json()["id"]]
