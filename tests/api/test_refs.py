"""Links declared by reference over HTTP: PUT/GET/DELETE /api/v1/refs?ref= (the operator's
upsert), with the API's own checks and problems."""

import time

import redis

from shorty.cache.links import KEY, CachedLink, encode
from tests.api.helpers import problem
from tests.helpers import bearer, query, scalar, user_with_key

REF = "k8s:marketing/spring-sale/0a1b-2c3d"
WHOLE = {
    "target": "https://shop.example.com/sale",
    "alias": "spring-sale",
    "tags": ["Campaign", "spring"],
    "expires_at": "2031-03-01T00:00:00Z",
    "max_clicks": 100,
    "redirect_type": 307,
    "disabled": False,
    "forward_query": "override",
}


def put(api, key, body, ref=REF):
    return api.put("/api/v1/refs", params={"ref": ref}, json=body, headers=bearer(key))


def test_put_creates_then_answers_200_without_writing_again(api, ada, clean):
    created = put(api, ada[1], WHOLE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["external_ref"] == REF
    assert body["code"] == "spring-sale"
    assert body["short_url"] == "https://sho.rt/spring-sale"
    assert body["tags"] == ["campaign", "spring"]
    assert (body["redirect_type"], body["max_clicks"], body["forward_query"]) == (
        307,
        100,
        "override",
    )
    assert body["expires_at"].startswith("2031-03-01T00:00:00")

    again = put(api, ada[1], WHOLE)
    assert again.status_code == 200
    assert again.json() == body
    events = query(clean.database_url, "SELECT event_type FROM outbox ORDER BY id")
    assert [e["event_type"] for e in events] == ["link.created"]


def test_a_field_left_out_takes_its_default(api, ada):
    put(api, ada[1], WHOLE)
    body = put(api, ada[1], {"target": "https://shop.example.com/sale"}).json()
    assert body["code"] == "spring-sale"  # the code stays
    assert (body["tags"], body["expires_at"], body["max_clicks"]) == ([], None, None)
    assert (body["redirect_type"], body["forward_query"]) == (302, "off")


def test_get_and_delete_by_reference_drop_the_cache(api, ada, clean):
    put(api, ada[1], WHOLE)
    fetched = api.get("/api/v1/refs", params={"ref": REF}, headers=bearer(ada[1]))
    assert fetched.status_code == 200
    assert fetched.json()["code"] == "spring-sale"
    cache = redis.Redis.from_url(clean.redis_url)
    cache.set(
        KEY.format("spring-sale"),
        encode(CachedLink(1, "https://shop.example.com/"), time.time() + 300),
    )
    gone = api.delete("/api/v1/refs", params={"ref": REF}, headers=bearer(ada[1]))
    assert gone.status_code == 204
    assert cache.exists(KEY.format("spring-sale")) == 0
    cache.close()
    for method in ("get", "delete"):
        answer = getattr(api, method)("/api/v1/refs", params={"ref": REF}, headers=bearer(ada[1]))
        assert problem(answer, 404, "link-not-found")["detail"] == (
            f"No link is declared as '{REF}'."
        )


def test_a_changed_target_is_applied_and_the_cache_forgets_the_old_one(api, ada, clean):
    put(api, ada[1], WHOLE)
    cache = redis.Redis.from_url(clean.redis_url)
    cache.set(
        KEY.format("spring-sale"),
        encode(CachedLink(1, "https://shop.example.com/"), time.time() + 300),
    )
    changed = put(api, ada[1], {**WHOLE, "target": "https://shop.example.com/summer"})
    assert changed.status_code == 200
    assert changed.json()["target"] == "https://shop.example.com/summer"
    assert cache.exists(KEY.format("spring-sale")) == 0
    cache.close()


def test_conflicts_are_409(api, ada, bob):
    api.post("/api/v1/shorten", json={"target": "https://a.example/", "alias": "taken"},
             headers=bearer(bob[1]))  # fmt: skip
    problem(put(api, ada[1], {**WHOLE, "alias": "taken"}), 409, "alias-taken")
    put(api, ada[1], WHOLE)
    problem(put(api, ada[1], {**WHOLE, "alias": "other-code"}), 409, "code-immutable")
    problem(put(api, bob[1], WHOLE), 409, "reference-taken")
    # Bob sees nothing of Ada's declaration.
    problem(api.get("/api/v1/refs", params={"ref": REF}, headers=bearer(bob[1])), 404,
            "link-not-found")  # fmt: skip


def test_bad_input_is_422_and_writes_nothing(api, ada, clean):
    cases = [
        ({**WHOLE, "target": "ftp://x.example/"}, REF),
        ({**WHOLE, "alias": "api"}, REF),
        ({**WHOLE, "tags": ["no!tag"]}, REF),
        ({**WHOLE, "redirect_type": 303}, REF),
        ({**WHOLE, "colour": "red"}, REF),
        ({"alias": "no-target"}, REF),
        (WHOLE, "x" * 513),
        (WHOLE, ""),
    ]
    for body, ref in cases:
        answer = put(api, ada[1], body, ref=ref)
        assert answer.status_code == 422, (body, ref, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    missing = api.put("/api/v1/refs", json=WHOLE, headers=bearer(ada[1]))
    assert missing.status_code == 422
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_an_expiry_in_the_past_declares_an_expired_link(api, ada):
    body = put(api, ada[1], {**WHOLE, "expires_at": "2020-01-01T00:00:00Z"})
    assert body.status_code == 201
    assert put(api, ada[1], {**WHOLE, "expires_at": "2020-01-01T00:00:00Z"}).status_code == 200
    far = put(api, ada[1], {**WHOLE, "expires_at": "2300-01-01T00:00:00Z"})
    assert problem(far, 422, "invalid-expiry")


def test_a_repeated_declaration_leaves_the_cache_alone(api, ada, clean):
    put(api, ada[1], WHOLE)
    cache = redis.Redis.from_url(clean.redis_url)
    cache.set(
        KEY.format("spring-sale"),
        encode(CachedLink(1, "https://shop.example.com/sale"), time.time() + 300),
    )
    assert put(api, ada[1], WHOLE).status_code == 200
    assert cache.exists(KEY.format("spring-sale")) == 1  # nothing changed: nothing dropped
    put(api, ada[1], {**WHOLE, "disabled": True})
    assert cache.exists(KEY.format("spring-sale")) == 0
    cache.close()


def test_declarations_are_per_account_even_for_an_admin(api, ada, admin, clean):
    put(api, ada[1], WHOLE)
    for method in ("get", "delete"):
        answer = getattr(api, method)("/api/v1/refs", params={"ref": REF}, headers=bearer(admin[1]))
        problem(answer, 404, "link-not-found")
    problem(put(api, admin[1], WHOLE), 409, "reference-taken")
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1


def test_scopes(api, clean):
    _, reader = user_with_key(clean.database_url, "ro@example.com", scopes=("urls:read",))
    problem(put(api, reader, WHOLE), 403, "insufficient-scope")
    deleting = api.delete("/api/v1/refs", params={"ref": REF}, headers=bearer(reader))
    problem(deleting, 403, "insufficient-scope")
