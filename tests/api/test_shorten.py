from datetime import UTC, datetime, timedelta

import pytest

from tests.api.helpers import problem
from tests.helpers import bearer, scalar


def test_shorten_returns_the_new_link(api, ada, clean):
    user_id, key = ada
    response = api.post(
        "/api/v1/shorten", json={"target": "https://example.com/a/b?c=d"}, headers=bearer(key)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    # The link whole, as GET /urls/{code} shows it (the fields not sent: their defaults).
    assert body == api.get(f"/api/v1/urls/{body['code']}", headers=bearer(key)).json()
    assert (body["redirect_type"], body["tags"], body["forward_query"]) == (302, [], "off")
    assert len(body["code"]) == 7
    assert body["short_url"] == f"https://sho.rt/{body['code']}"
    assert body["target"] == "https://example.com/a/b?c=d"
    assert body["expires_at"] is None
    assert response.headers["location"] == f"/api/v1/urls/{body['code']}"
    owner = scalar(clean.database_url, "SELECT owner_id FROM urls WHERE code = $1", body["code"])
    assert owner == user_id


def test_target_is_normalized(api, ada):
    response = api.post(
        "/api/v1/shorten", json={"target": "HTTPS://Bücher.DE/x"}, headers=bearer(ada[1])
    )
    assert response.status_code == 201
    assert response.json()["target"] == "https://xn--bcher-kva.de/x"
    padded = api.post(
        "/api/v1/shorten", json={"target": " https://example.com/ "}, headers=bearer(ada[1])
    )
    assert problem(padded, 422, "invalid-target")["reason"] == "bad-characters"


def test_custom_alias_and_expiry(api, ada):
    expires = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    response = api.post(
        "/api/v1/shorten",
        json={
            "target": "https://example.com",
            "alias": "launch-2026",
            "expires_at": expires.isoformat(),
        },
        headers=bearer(ada[1]),
    )
    assert response.status_code == 201
    body = response.json()
    assert body["code"] == "launch-2026"
    assert datetime.fromisoformat(body["expires_at"]) == expires


def test_taken_alias_is_409(api, ada, bob):
    api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "alias": "taken"},
        headers=bearer(ada[1]),
    )
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://b.example", "alias": "taken"},
        headers=bearer(bob[1]),
    )
    body = problem(response, 409, "alias-taken")
    assert body["detail"] == "The alias 'taken' is already taken."
    assert body["instance"] == "/api/v1/shorten"


@pytest.mark.parametrize(
    ("alias", "fragment"), [("ab", "3 to 64"), ("no spaces", "only letters"), ("admin", "reserved")]
)
def test_bad_alias_is_422(api, ada, alias, fragment):
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "alias": alias},
        headers=bearer(ada[1]),
    )
    assert fragment in problem(response, 422, "invalid-alias")["detail"]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("ftp://example.com", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("https://user:pw@example.com", "credentials"),
        ("https://sho.rt/abc", "own-host"),
        ("https://sho.rt\u3002/abc", "own-host"),
        ("https://sho\uff0ert/abc", "own-host"),
        ("https://SHO.RT./abc", "own-host"),
        ("http://169.254.169.254/latest/meta-data/", "private-address"),
        ("http://127.1:8080/x", "private-address"),
        ("http://[::ffff:10.0.0.1]/", "private-address"),
        ("https://p\u0430ypal.com/login", "confusable-host"),
        ("https://example.com../", "bad-host"),
        ("https://example.com/" + "x" * 2100, "too-long"),
        ("https://-x-.com", "bad-host"),
        ("", "empty"),
    ],
)
def test_bad_target_is_422_with_reason(api, ada, target, reason):
    response = api.post("/api/v1/shorten", json={"target": target}, headers=bearer(ada[1]))
    body = problem(response, 422, "invalid-target")
    assert body["reason"] == reason
    assert body["detail"]


def test_expiry_in_the_past_is_422(api, ada):
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "expires_at": past},
        headers=bearer(ada[1]),
    )
    assert problem(response, 422, "invalid-expiry")["detail"] == "expires_at must be in the future."


def test_expiry_without_zone_is_422(api, ada):
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "expires_at": "2030-01-01T00:00:00"},
        headers=bearer(ada[1]),
    )
    body = problem(response, 422, "validation-failed")
    assert body["errors"][0]["field"] == "expires_at"


def test_malformed_json_is_400(api, ada):
    response = api.post(
        "/api/v1/shorten",
        content=b'{"target": ',
        headers={**bearer(ada[1]), "Content-Type": "application/json"},
    )
    assert "not valid JSON" in problem(response, 400, "malformed-json")["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "target"),
        ({"target": 42}, "target"),
        ({"target": "https://a.example", "colour": "red"}, "colour"),
        ([], "(body)"),
        ("https://a.example", "(body)"),
    ],
)
def test_invalid_fields_are_422_and_named(api, ada, payload, field):
    response = api.post("/api/v1/shorten", json=payload, headers=bearer(ada[1]))
    body = problem(response, 422, "validation-failed")
    assert [e["field"] for e in body["errors"]] == [field]
    assert field in body["detail"]


def test_wrong_content_type_is_415(api, ada):
    response = api.post(
        "/api/v1/shorten", data={"target": "https://a.example"}, headers=bearer(ada[1])
    )
    assert "application/json" in problem(response, 415, "unsupported-media-type")["detail"]


def test_oversized_body_is_413(api, ada, clean):
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example/" + "x" * 70_000},
        headers=bearer(ada[1]),
    )
    problem(response, 413, "body-too-large")
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_far_future_expiry_is_422(api, ada):
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "expires_at": "2999-12-31T23:59:59-12:00"},
        headers=bearer(ada[1]),
    )
    assert "100 years" in problem(response, 422, "invalid-expiry")["detail"]
    beyond = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "expires_at": "9999-12-31T23:59:59-12:00"},
        headers=bearer(ada[1]),
    )
    assert "2999" in problem(beyond, 422, "validation-failed")["detail"]


def test_numeric_expiry_is_refused(api, ada):
    response = api.post(
        "/api/v1/shorten",
        json={"target": "https://a.example", "expires_at": 1900000000},
        headers=bearer(ada[1]),
    )
    body = problem(response, 422, "validation-failed")
    assert "RFC 3339" in body["errors"][0]["message"]


def test_deeply_nested_json_is_400(api, ada):
    response = api.post(
        "/api/v1/shorten",
        content=b"[" * 60_000,
        headers={**bearer(ada[1]), "Content-Type": "application/json"},
    )
    problem(response, 400, "malformed-json")


def test_unicode_target_is_stored_ascii_and_redirects(api, ada, settings):
    from starlette.testclient import TestClient

    from shorty.redirect.app import create_app as create_redirect

    response = api.post(
        "/api/v1/shorten", json={"target": "https://例え.jp/日本?q=ü"}, headers=bearer(ada[1])
    )
    assert response.status_code == 201
    body = response.json()
    assert body["target"] == "https://xn--r8jz45g.jp/%E6%97%A5%E6%9C%AC?q=%C3%BC"
    with TestClient(create_redirect(settings), follow_redirects=False) as redirect:
        followed = redirect.get("/" + body["code"])
    assert followed.status_code == 302
    assert followed.headers["location"] == body["target"]


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("GET", "/api/v1/refs?ref=a%00b", None, "ref"),
        ("GET", "/api/v1/urls?q=a%00b", None, "q"),
        ("GET", "/api/v1/urls?tag=a%00b", None, "tag"),
        ("POST", "/api/v1/shorten", {"target": "https://example.com/", "alias": "a\x00b"}, "alias"),
        ("POST", "/api/v1/auth/register", {"email": "a\x00@b.c", "password": "x" * 12}, "email"),
        ("POST", "/api/v1/auth/login", {"email": "a@b.c", "password": "\x00" * 12}, "password"),
    ],
)
def test_a_nul_character_is_422_not_a_500(api, ada, method, path, body, field):
    """PostgreSQL cannot store NUL: every text is checked for it where it is parsed."""
    response = api.request(method, path, json=body, headers=bearer(ada[1]))
    errors = problem(response, 422, "validation-failed")["errors"]
    assert [error["field"] for error in errors] == [field]


def test_a_nul_character_in_a_patch_is_422(api, ada):
    code = api.post(
        "/api/v1/shorten", json={"target": "https://example.com/"}, headers=bearer(ada[1])
    ).json()["code"]
    response = api.patch(f"/api/v1/urls/{code}", json={"title": "a\x00b"}, headers=bearer(ada[1]))
    assert [e["field"] for e in problem(response, 422, "validation-failed")["errors"]] == ["title"]


def test_a_nul_character_fails_only_its_bulk_item(api, ada):
    items = [{"target": "https://example.com/"}, {"target": "https://e.com/", "alias": "a\x00b"}]
    response = api.post("/api/v1/urls/bulk", json={"items": items}, headers=bearer(ada[1]))
    assert response.status_code == 200
    body = response.json()
    assert (body["created"], body["failed"]) == (1, 1)
    failed = body["results"][1]["problem"]
    assert [error["field"] for error in failed["errors"]] == ["items.1.alias"]
