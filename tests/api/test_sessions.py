"""Register, log in, use the access token, refresh (rotation and reuse), log out."""

import time

import jwt
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.api.test_shorten import problem
from tests.helpers import bearer, query, scalar

SECRET = "test-jwt-secret-0123456789-abcdefghij"
ADA = {"email": "Ada@Example.com", "password": "correct horse battery"}


@pytest.fixture
def api(settings):
    with TestClient(
        create_app(settings.model_copy(update={"jwt_secret": SecretStr(SECRET)}))
    ) as client:
        yield client


def register_and_login(api):
    assert api.post("/api/v1/auth/register", json=ADA).status_code == 201
    response = api.post("/api/v1/auth/login", json=ADA)
    assert response.status_code == 200, response.text
    return response.json()


def test_register_login_and_use_the_access_token(api, clean):
    created = api.post("/api/v1/auth/register", json=ADA)
    assert created.status_code == 201
    assert created.json()["email"] == "ada@example.com"
    assert scalar(clean.database_url, "SELECT password_hash FROM users").startswith("$argon2id$")
    pair = api.post("/api/v1/auth/login", json=ADA).json()
    assert pair["token_type"] == "Bearer"
    assert pair["expires_in"] == 900
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["sub"] == str(created.json()["id"])
    shortened = api.post(
        "/api/v1/shorten",
        json={"target": "https://example.com"},
        headers=bearer(pair["access_token"]),
    )
    assert shortened.status_code == 201
    assert (
        api.get("/api/v1/urls", headers=bearer(pair["access_token"])).json()["items"][0]["code"]
        == shortened.json()["code"]
    )


def test_refresh_rotates_and_reuse_ends_the_family(api, clean):
    first = register_and_login(api)
    second = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200
    second = second.json()
    assert second["refresh_token"] != first["refresh_token"]
    third = api.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}).json()
    # The first token again: someone copied it. Every token of the family dies.
    reused = api.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    problem(reused, 401, "refresh-token-reused")
    problem(
        api.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    assert (
        scalar(clean.database_url, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
        == 0
    )


def test_logout_revokes(api):
    pair = register_and_login(api)
    assert (
        api.post("/api/v1/auth/logout", json={"refresh_token": pair["refresh_token"]}).status_code
        == 204
    )
    problem(
        api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
        401,
        "invalid-refresh-token",
    )
    assert api.post("/api/v1/auth/logout", json={"refresh_token": "shr_unknown"}).status_code == 204


def test_login_failures_look_the_same(api):
    api.post("/api/v1/auth/register", json=ADA)
    wrong = api.post("/api/v1/auth/login", json={**ADA, "password": "wrong password!"})
    unknown = api.post(
        "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "whatever123"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == {**unknown.json()}
    assert wrong.json()["detail"] == "The email or the password is wrong."


def test_login_is_rate_limited_per_account(api):
    api.post("/api/v1/auth/register", json=ADA)
    statuses = [
        api.post("/api/v1/auth/login", json={**ADA, "password": f"guess number {i}"}).status_code
        for i in range(6)
    ]
    assert statuses == [401] * 5 + [429]
    problem(
        api.post("/api/v1/auth/login", json=ADA), 429, "rate-limited"
    )  # even the right one, for now


def test_bad_access_tokens(api, settings):
    pair = register_and_login(api)
    tampered = pair["access_token"][:-2] + (
        "AA" if not pair["access_token"].endswith("AA") else "BB"
    )
    problem(api.get("/api/v1/urls", headers=bearer(tampered)), 401, "invalid-token")
    foreign = jwt.encode(
        {"sub": "1", "iss": "shorty", "iat": int(time.time()), "exp": int(time.time()) + 60},
        "another-secret-entirely-000-0123456789",
        algorithm="HS256",
    )
    problem(api.get("/api/v1/urls", headers=bearer(foreign)), 401, "invalid-token")
    expired = jwt.encode(
        {"sub": "1", "iss": "shorty", "iat": 1, "exp": 2},
        SECRET,
        algorithm="HS256",
    )
    problem(api.get("/api/v1/urls", headers=bearer(expired)), 401, "invalid-token")


def test_disabled_users_lose_access_at_once(api, clean):
    pair = register_and_login(api)
    query(clean.database_url, "UPDATE users SET disabled = true")
    problem(api.get("/api/v1/urls", headers=bearer(pair["access_token"])), 401, "invalid-token")
    problem(
        api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
        401,
        "invalid-credentials",
    )


def test_registration_can_be_closed(settings):
    closed = settings.model_copy(update={"registration_open": False})
    with TestClient(create_app(closed)) as api:
        problem(api.post("/api/v1/auth/register", json=ADA), 403, "registration-closed")


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "long enough pw"},
        {"email": "a@b.c", "password": "short"},
        {"email": "a@b.c"},
    ],
)
def test_bad_registrations(api, body):
    assert api.post("/api/v1/auth/register", json=body).status_code == 422


def test_duplicate_registration(api):
    api.post("/api/v1/auth/register", json=ADA)
    assert api.post("/api/v1/auth/register", json=ADA).status_code == 422
