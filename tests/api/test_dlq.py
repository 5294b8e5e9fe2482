"""The dead-letter stream over HTTP, for admins: list, one letter, replay, purge."""

from __future__ import annotations

import redis

from shorty.worker.dlq import DLQ
from tests.api.helpers import letters, problem
from tests.helpers import bearer


def test_listing_pages_oldest_first(api, admin, clean):
    ids = letters(clean.redis_url, 3)
    first = api.get("/api/v1/admin/dlq?limit=2", headers=bearer(admin[1])).json()
    assert first["size"] == 3
    assert [one["id"] for one in first["items"]] == ids[:2]
    assert first["items"][0]["fields"] == {"data": "payload 0"}
    assert first["items"][0]["error"] == "boom 0"
    rest = api.get(
        f"/api/v1/admin/dlq?after={first['next_after']}", headers=bearer(admin[1])
    ).json()
    assert [one["id"] for one in rest["items"]] == ids[2:]
    assert rest["next_after"] is None
    one = api.get(f"/api/v1/admin/dlq/{ids[1]}", headers=bearer(admin[1])).json()
    assert one["entry_id"] == "1-1"


def test_only_admins(api, ada, clean):
    letters(clean.redis_url, 1)
    problem(api.get("/api/v1/admin/dlq", headers=bearer(ada[1])), 403, "insufficient-scope")
    answer = api.post("/api/v1/admin/dlq/purge", json={"all": True}, headers=bearer(ada[1]))
    problem(answer, 403, "insufficient-scope")
    assert redis.Redis.from_url(clean.redis_url).xlen(DLQ) == 1


def test_replay_writes_back_and_says_what_was_missing(api, admin, clean):
    ids = letters(clean.redis_url, 2)
    answer = api.post(
        "/api/v1/admin/dlq/replay", json={"ids": [ids[0], "9-9"]}, headers=bearer(admin[1])
    )
    assert answer.json() == {"replayed": 1, "missing": ["9-9"]}
    client = redis.Redis.from_url(clean.redis_url)
    assert client.xlen(DLQ) == 1
    replayed = client.xrange("shorty:clicks")
    assert replayed[-1][1][b"data"] == b"payload 0"


def test_purge_some_or_all(api, admin, clean):
    ids = letters(clean.redis_url, 3)
    some = api.post("/api/v1/admin/dlq/purge", json={"ids": [ids[0]]}, headers=bearer(admin[1]))
    assert some.json() == {"purged": 1}
    every = api.post("/api/v1/admin/dlq/purge", json={"all": True}, headers=bearer(admin[1]))
    assert every.json() == {"purged": 2}


def test_a_letter_into_a_foreign_stream_is_not_replayed(api, admin, clean):
    ids = letters(clean.redis_url, 1, stream="someone:else")
    answer = api.post("/api/v1/admin/dlq/replay", json={"ids": ids}, headers=bearer(admin[1]))
    problem(answer, 422, "validation-failed")
    assert redis.Redis.from_url(clean.redis_url).xlen(DLQ) == 1


def test_bad_choices_are_422(api, admin):
    for body in [{}, {"ids": ["1-1"], "all": True}, {"ids": ["nope"]}, {"ids": []}]:
        answer = api.post("/api/v1/admin/dlq/purge", json=body, headers=bearer(admin[1]))
        problem(answer, 422, "validation-failed")
    problem(api.get("/api/v1/admin/dlq/9-9", headers=bearer(admin[1])), 404, "letter-not-found")
    problem(
        api.get("/api/v1/admin/dlq?after=x", headers=bearer(admin[1])), 422, "validation-failed"
    )


def test_users_are_searched_by_address(api, admin, ada, bob):
    found = api.get("/api/v1/admin/users?q=BOB@", headers=bearer(admin[1])).json()
    assert [user["email"] for user in found["items"]] == ["bob@example.com"]
    none = api.get("/api/v1/admin/users?q=%25", headers=bearer(admin[1])).json()
    assert none["items"] == []  # % is a literal
