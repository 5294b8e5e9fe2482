"""API rate limits end to end: per key, per user, per IP; headers; fallback."""

import ipaddress
from concurrent.futures import ThreadPoolExecutor

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.api.helpers import problem
from tests.helpers import another_key, bearer, query, scalar, user_with_key

BODY = {"target": "https://example.com"}


@pytest.fixture
def limited(settings):
    def make(**limits):
        return TestClient(create_app(settings.model_copy(update=limits)))

    return make


def test_fifty_concurrent_requests_against_ten_per_minute_give_ten_successes(limited, ada):
    with limited(limit_per_key="10/minute") as api, ThreadPoolExecutor(50) as pool:
        responses = list(
            pool.map(
                lambda _: api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1])), range(50)
            )
        )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) == 10
    assert statuses.count(429) == 40
    refused = next(r for r in responses if r.status_code == 429)
    body = problem(refused, 429, "rate-limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-remaining"] == "0"
    assert "retry in" in body["detail"]


def test_headers_on_every_answer(limited, ada):
    with limited(limit_per_key="5/minute", limit_per_user="100/minute") as api:
        ok = api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1]))
        missing = api.get("/api/v1/urls/nothere", headers=bearer(ada[1]))
    assert ok.status_code == 201
    assert ok.headers["ratelimit-limit"] == "5"
    assert ok.headers["ratelimit-remaining"] == "4"
    assert int(ok.headers["ratelimit-reset"]) == 12
    assert missing.status_code == 404
    assert missing.headers["ratelimit-remaining"] == "3"


def test_keys_of_one_user_share_the_user_limit(limited, clean):
    user_id, first = user_with_key(clean.database_url, "ada@example.com")
    second = another_key(clean.database_url, user_id)
    _, bobs = user_with_key(clean.database_url, "bob@example.com")
    with limited(limit_per_key="100/minute", limit_per_user="3/minute") as api:
        statuses = [
            api.post("/api/v1/shorten", json=BODY, headers=bearer(key)).status_code
            for key in (first, second, first, second)
        ]
        assert statuses == [201, 201, 201, 429]
        assert api.post("/api/v1/shorten", json=BODY, headers=bearer(bobs)).status_code == 201
    assert scalar(clean.database_url, "SELECT count(*) FROM urls WHERE owner_id = $1", user_id) == 3


def test_a_key_can_carry_its_own_limit(limited, ada, clean):
    query(clean.database_url, "UPDATE api_keys SET rate_limit = '2/minute'")
    with limited(limit_per_key="100/minute") as api:
        statuses = [
            api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1])).status_code
            for _ in range(3)
        ]
    assert statuses == [201, 201, 429]


def test_guessing_keys_is_throttled_per_ip(limited, ada):
    with limited(limit_per_ip="3/minute") as api:
        statuses = [
            api.get("/api/v1/urls/abc", headers=bearer(f"shk_guess{i}")).status_code
            for i in range(4)
        ]
        # The IP's budget is spent: even a valid key waits.
        valid = api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1]))
    assert statuses == [401, 401, 401, 429]
    assert valid.status_code == 429


def test_limits_can_be_switched_off(limited, ada):
    with limited(limit_per_key="off", limit_per_user="off", limit_per_ip="off") as api:
        response = api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1]))
    assert response.status_code == 201
    assert "ratelimit-limit" not in response.headers


def test_without_redis_the_api_limits_in_process(clean, settings_without_redis):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    settings = settings_without_redis.model_copy(
        update={"limit_per_key": "6/minute", "api_replicas": 3}
    )
    with TestClient(create_app(settings)) as api:
        statuses = [
            api.post("/api/v1/shorten", json=BODY, headers=bearer(key)).status_code
            for _ in range(3)
        ]
    assert statuses == [201, 201, 429]  # 6 across 3 replicas: 2 here


PROXY = ("10.1.2.3", 4000)  # a trusted proxy: the client is its X-Forwarded-For


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        (64, [401, 401, 429, 401]),  # one /64 is one client
        (128, [401, 401, 401, 401]),  # every address its own
        (48, [401, 401, 429, 429]),  # the whole /48 is one client
    ],
)
def test_ipv6_clients_share_the_ip_limit_by_network(settings, clean, prefix, expected):
    """Issue #12 item 10: an IPv6 client is its /64 (SHORTY_IPV6_PREFIX), so a host
    cannot take a fresh address per guess."""
    limited = settings.model_copy(
        update={
            "limit_per_ip": "2/minute",
            "ipv6_prefix": prefix,
            "trusted_proxies": [ipaddress.ip_network("10.0.0.0/8")],
        }
    )
    addresses = ["2001:db8:1:2::a", "2001:db8:1:2:ffff::b", "2001:db8:1:2::c", "2001:db8:1:3::a"]
    with TestClient(create_app(limited), client=PROXY) as api:
        statuses = [
            api.get("/api/v1/urls", headers={"X-Forwarded-For": address}).status_code
            for address in addresses
        ]
    assert statuses == expected


def test_an_ipv4_mapped_client_is_its_ipv4_address(settings, clean):
    limited = settings.model_copy(
        update={"limit_per_ip": "1/minute", "trusted_proxies": [ipaddress.ip_network("10.0.0.0/8")]}
    )
    with TestClient(create_app(limited), client=PROXY) as api:
        first = api.get("/api/v1/urls", headers={"X-Forwarded-For": "198.51.100.7"})
        mapped = api.get("/api/v1/urls", headers={"X-Forwarded-For": "::ffff:198.51.100.7"})
    assert (first.status_code, mapped.status_code) == (401, 429)


def test_registration_from_one_64_is_limited_as_one_client(settings, clean):
    """The login and registration limits per IP key IPv6 peers by network too."""
    limited = settings.model_copy(update={"login_limit_per_ip": "2/minute"})
    statuses = []
    for i, peer in enumerate(["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8:0:1::1"]):
        with TestClient(create_app(limited), client=(peer, 4000)) as api:
            body = {"email": f"user{i}@example.com", "password": "a long enough password"}
            statuses.append(api.post("/api/v1/auth/register", json=body).status_code)
    assert statuses == [202, 202, 429, 202]


def bulk_of(n):
    return {"items": [{"target": f"https://example.com/{i}"} for i in range(n)]}


LOOSE = {"limit_per_key": "off", "limit_per_user": "off", "limit_per_ip": "off"}


@pytest.mark.parametrize("tight", ["limit_per_key", "limit_per_user", "limit_per_ip"])
def test_a_bulk_spends_one_per_item(limited, ada, clean, tight):
    """Issue #12 item 10: a bulk of 8 against 10/minute leaves 2, whichever limit it is."""
    with limited(**{**LOOSE, tight: "10/minute"}) as api:
        eight = api.post("/api/v1/urls/bulk", json=bulk_of(8), headers=bearer(ada[1]))
        three = api.post("/api/v1/urls/bulk", json=bulk_of(3), headers=bearer(ada[1]))
        one = api.post("/api/v1/shorten", json=BODY, headers=bearer(ada[1]))
    assert eight.json()["created"] == 8
    assert (eight.headers["ratelimit-limit"], eight.headers["ratelimit-remaining"]) == ("10", "2")
    problem(three, 429, "rate-limited")  # 3 do not fit in 2, and spend nothing
    assert int(three.headers["retry-after"]) == 6  # one more token every 6 s
    assert one.status_code == 201
    assert one.headers["ratelimit-remaining"] == "1"
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 9


def test_a_bulk_larger_than_the_limit_is_413_and_counted_once(limited, ada, clean):
    with limited(limit_per_key="10/minute", limit_per_user="50/minute") as api:
        eleven = api.post("/api/v1/urls/bulk", json=bulk_of(11), headers=bearer(ada[1]))
        ten = api.post("/api/v1/urls/bulk", json=bulk_of(10), headers=bearer(ada[1]))
    body = problem(eleven, 413, "bulk-too-large")
    assert body["limit"] == 10
    assert "parts of at most 10" in body["detail"]
    assert eleven.headers["ratelimit-remaining"] == "9"  # one request, not eleven
    assert ten.status_code == 429  # ten no longer fit in the 9 left
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_a_bulk_that_is_refused_before_its_items_is_one_request(limited, clean):
    """Every request makes exactly one rate-limit check, a bulk whose body is bad too."""
    _, reader = user_with_key(clean.database_url, "reader@example.com", scopes=("urls:read",))
    _, writer = user_with_key(clean.database_url, "writer@example.com")
    with limited(limit_per_key="3/minute") as api:
        broken = api.post(
            "/api/v1/urls/bulk",
            content=b"{not json",
            headers={**bearer(writer), "Content-Type": "application/json"},
        )
        empty = api.post("/api/v1/urls/bulk", json={"items": []}, headers=bearer(writer))
        unscoped = api.post("/api/v1/urls/bulk", json=bulk_of(2), headers=bearer(reader))
        anonymous = api.post(  # the body of an unknown caller is never read
            "/api/v1/urls/bulk", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    problem(broken, 400, "malformed-json")
    assert broken.headers["ratelimit-remaining"] == "2"
    problem(empty, 422, "validation-failed")
    assert empty.headers["ratelimit-remaining"] == "1"
    problem(unscoped, 403, "insufficient-scope")  # refused for its scope, counted once
    assert unscoped.headers["ratelimit-remaining"] == "2"
    problem(anonymous, 401, "unauthenticated")
