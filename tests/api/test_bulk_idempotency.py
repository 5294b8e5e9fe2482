"""POST /api/v1/urls/bulk and Idempotency-Key."""

import asyncio
import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.redirect.app import create_app as create_redirect
from tests.api.helpers import problem
from tests.helpers import bearer, on_pool, query, scalar, waiting_on_a_lock

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


HELD = 7414  # the advisory lock a trigger makes the answer's write wait for
# Holds the write of an idempotent request's answer (the last statement before its
# commit) while the test holds the advisory lock.
HOLD_THE_ANSWER = [
    """
CREATE FUNCTION hold_the_answer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7414);
    RETURN NEW;
END $$
""",
    "CREATE TRIGGER hold_the_answer BEFORE UPDATE ON idempotency_keys"
    " FOR EACH ROW EXECUTE FUNCTION hold_the_answer()",
]


@contextlib.contextmanager
def advisory_lock_held(database_url, lock_id):
    """``lock_id`` held by a session of its own for the block."""
    held, done = threading.Event(), threading.Event()

    async def hold():
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("SELECT pg_advisory_lock($1)", lock_id)
            held.set()
            await asyncio.to_thread(done.wait, 30)  # bounded: the test's own length
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(hold(),), daemon=True)
    thread.start()
    try:
        assert held.wait(10), "the advisory lock was not taken"
        yield
    finally:
        done.set()
        thread.join(10)


def test_a_code_looked_up_before_its_create_commits_redirects_once_it_has(settings, ada, clean):
    # The create's cache invalidation used to run before the joined transaction
    # committed: a lookup in between found no link, and the LRU and Redis kept the
    # code as unknown for SHORTY_NEGATIVE_TTL (or until the worker replayed the outbox).
    for statement in HOLD_THE_ANSWER:
        query(clean.database_url, statement)
    remembering = settings.model_copy(update={"negative_ttl": 30.0})
    body = {"target": "https://example.com/gap", "alias": "in-the-gap"}
    try:
        with (
            TestClient(create_app(settings)) as api,
            TestClient(create_redirect(remembering), follow_redirects=False) as redirect,
            ThreadPoolExecutor(1) as caller,
        ):
            with advisory_lock_held(clean.database_url, HELD):
                created = caller.submit(post, api, ada[1], body, "in-the-gap")
                # The link is written, the answer's write waits: not committed yet.
                on_pool(clean.database_url, waiting_on_a_lock)
                assert redirect.get("/in-the-gap").status_code == 404
            assert created.result(10).status_code == 201
            committed = time.monotonic()
            statuses = []
            while time.monotonic() < committed + 1.0:  # the invalidation's pub/sub message
                statuses.append(redirect.get("/in-the-gap").status_code)
                if statuses[-1] != 404:
                    break
                time.sleep(0.02)
            print(f"after the commit: {statuses} in {time.monotonic() - committed:.3f} s")
            assert statuses[-1] == 302, f"{len(statuses)} lookups in 1 s after the commit: 404"
    finally:
        query(clean.database_url, "DROP TRIGGER hold_the_answer ON idempotency_keys")
        query(clean.database_url, "DROP FUNCTION hold_the_answer()")
