"""POST /api/v1/urls/bulk and Idempotency-Key."""

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.api.helpers import problem
from tests.helpers import bearer, query, scalar

BODY = {"target": "https://example.com/once"}


def post(api, key, body, idem=None, path="/api/v1/shorten"):
    headers = bearer(key) | ({"Idempotency-Key": idem} if idem else {})
    return api.post(path, json=body, headers=headers)


def test_same_key_same_body_gets_the_first_answer(api, ada, clean):
    first = post(api, ada[1], BODY, "k-1")
    again = post(api, ada[1], BODY, "k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1


def test_same_key_other_body_is_422(api, ada):
    post(api, ada[1], BODY, "k-2")
    response = post(api, ada[1], {"target": "https://example.com/other"}, "k-2")
    assert "another request body" in problem(response, 422, "idempotency-key-reused")["detail"]


def test_keys_belong_to_their_user(api, ada, bob, clean):
    post(api, ada[1], BODY, "shared")
    assert post(api, bob[1], BODY, "shared").status_code == 201
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 2


def test_a_failed_request_frees_its_key(api, ada):
    refused = post(api, ada[1], {"target": "ftp://nope"}, "k-3")
    assert refused.status_code == 422
    assert post(api, ada[1], {"target": "ftp://nope"}, "k-3").status_code == 422  # ran again
    other = post(api, ada[1], BODY, "k-3")
    assert other.status_code == 201  # the key was free


def test_in_progress_and_expired_keys(api, ada, clean):
    query(
        clean.database_url,
        "INSERT INTO idempotency_keys (user_id, route, key, request_hash)"
        " VALUES ($1, '/api/v1/shorten', 'busy', 'whatever')",
        ada[0],
    )
    problem(post(api, ada[1], BODY, "busy"), 422, "idempotency-key-reused")
    query(
        clean.database_url, "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
    )
    assert post(api, ada[1], BODY, "busy").status_code == 201  # an expired key is new again
    row = query(clean.database_url, "SELECT request_hash FROM idempotency_keys WHERE key = 'busy'")[
        0
    ]
    query(clean.database_url, "UPDATE idempotency_keys SET status = NULL, response = NULL")
    again = post(api, ada[1], BODY, "busy")
    assert row["request_hash"] != "whatever"
    problem(again, 409, "idempotency-key-in-progress")


@pytest.mark.parametrize("idem", ["", "x" * 256, "bad\tkey"])
def test_bad_idempotency_keys(api, ada, idem):
    response = api.post(
        "/api/v1/shorten", json=BODY, headers=bearer(ada[1]) | {"Idempotency-Key": idem}
    )
    problem(response, 422, "validation-failed")


def test_bulk_items_succeed_or_fail_alone(api, ada, clean):
    items = [
        {"target": "https://example.com/1"},
        {"target": "ftp://bad"},
        {"target": "https://example.com/2", "alias": "bulk-alias"},
        {"target": "https://example.com/3", "alias": "bulk-alias"},
        {"nope": 1},
        {"target": "https://example.com/4", "expires_at": "2001-01-01T00:00:00Z"},
    ]
    response = post(api, ada[1], {"items": items}, path="/api/v1/urls/bulk")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["failed"]) == (2, 4)
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [201, 422, 201, 409, 422, 422]
    assert [r["index"] for r in body["results"]] == list(range(6))
    assert body["results"][1]["problem"]["reason"] == "scheme"
    assert body["results"][3]["problem"]["type"].endswith("/alias-taken")
    assert body["results"][4]["problem"]["errors"][0]["field"] in {"items.4.target", "items.4.nope"}
    assert body["results"][2]["link"]["code"] == "bulk-alias"
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 2


@pytest.mark.parametrize(
    "body",
    [{"items": []}, {"items": [BODY] * 1001}, {"items": "x"}, [BODY], {"items": [BODY], "x": 1}],
)
def test_bulk_shape(api, ada, body):
    response = post(api, ada[1], body, path="/api/v1/urls/bulk")
    problem(response, 422, "validation-failed")


def test_bulk_of_a_thousand_and_idempotent(settings, ada, clean):
    # Each item costs one from every rate limit, a replay too: limits that hold both.
    roomy = dict.fromkeys(("limit_per_key", "limit_per_user", "limit_per_ip"), "2000/minute")
    items = [{"target": f"https://example.com/{i}"} for i in range(1000)]
    with TestClient(create_app(settings.model_copy(update=roomy))) as api:
        first = post(api, ada[1], {"items": items}, "bulk-1", path="/api/v1/urls/bulk")
        assert first.json()["created"] == 1000
        again = post(api, ada[1], {"items": items}, "bulk-1", path="/api/v1/urls/bulk")
    assert again.json() == first.json()
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1000
