"""Sign up, log in, log out, change the password; the session cookie and CSRF."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.helpers import query
from tests.web_ui.conftest import ADA, csrf_of, post_form, sign_up


def test_signing_up_signs_in(ui):
    sign_up(ui)
    listing = ui.get("/ui/links")
    assert listing.status_code == 200
    assert ADA[0] in listing.text
    assert "Welcome" not in listing.text  # the notice only on the page the redirect names
    assert "Welcome! Your account is ready." in ui.get("/ui/links?done=signed-up").text


def test_the_session_cookie_is_httponly_and_lax(ui):
    token = csrf_of(ui.get("/ui/signup").text)
    fields = {"csrf": token, "email": ADA[0], "password": ADA[1], "repeat": ADA[1]}
    answer = ui.post("/ui/signup", data=fields, follow_redirects=False)
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "shorty_session=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here: a Secure cookie would never come back


def test_behind_tls_the_cookie_is_secure_and_host_bound(settings):
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        sign_up(client)
        names = [c.name for c in client.cookies.jar]
        assert "__Host-shorty_session" in names
        assert client.get("/ui/links").status_code == 200


def test_a_form_without_its_csrf_token_does_nothing(ada, clean):
    for token in ["", "0" * 64]:
        answer = ada.post("/ui/new", data={"csrf": token, "target": "https://example.com/"})
        assert answer.status_code == 403
        assert "expired or came from another site" in answer.text
    assert query(clean.database_url, "SELECT count(*) FROM urls")[0][0] == 0


def test_a_cross_site_post_does_nothing_even_with_a_token(ada, clean):
    token = csrf_of(ada.get("/ui/new").text)
    answer = ada.post(
        "/ui/new",
        data={"csrf": token, "target": "https://example.com/"},
        headers={"Sec-Fetch-Site": "cross-site"},
    )
    assert answer.status_code == 403
    assert query(clean.database_url, "SELECT count(*) FROM urls")[0][0] == 0


def test_a_token_of_one_session_is_no_good_in_another(settings, clean):
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:
        sign_up(first)
        token = csrf_of(first.get("/ui/new").text)
        sign_up(second, "bob@example.com")
        answer = second.post("/ui/new", data={"csrf": token, "target": "https://example.com/"})
        assert answer.status_code == 403


def test_pages_need_a_login_and_come_back_after_it(ui):
    answer = ui.get("/ui/links?tag=docs", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Flinks%3Ftag%3Ddocs"
    sign_up(ui)
    post_form(ui, "/ui/logout", {}, page="/ui/links")
    back = post_form(
        ui,
        "/ui/login",
        {"email": ADA[0], "password": ADA[1], "next": "/ui/links?tag=docs"},
    )
    assert back.status_code == 303
    assert back.headers["location"] == "/ui/links?tag=docs"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil", "javascript:alert(1)"]
)
def test_a_login_never_sends_the_browser_off_site(ui, target):
    sign_up(ui)
    post_form(ui, "/ui/logout", {}, page="/ui/links")
    back = post_form(ui, "/ui/login", {"email": ADA[0], "password": ADA[1], "next": target})
    assert back.headers["location"] == "/ui/links"


def test_a_wrong_password_is_said_on_the_form(ui):
    sign_up(ui)
    post_form(ui, "/ui/logout", {}, page="/ui/links")
    answer = post_form(ui, "/ui/login", {"email": ADA[0], "password": "wrong password!"})
    assert answer.status_code == 401
    assert "The email or the password is wrong." in answer.text
    assert 'value="ada@example.com"' in answer.text  # what was typed stays


def test_logging_out_ends_the_session_for_good(ui, clean):
    sign_up(ui)
    cookie = ui.cookies.get("shorty_session")
    answer = post_form(ui, "/ui/logout", {}, page="/ui/links")
    assert answer.headers["location"] == "/ui/login?done=logged-out"
    # The old cookie, kept by someone, is worth nothing now.
    ui.cookies.set("shorty_session", cookie)
    assert ui.get("/ui/links", follow_redirects=False).status_code == 303
    revoked = query(
        clean.database_url, "SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL"
    )
    assert revoked[0][0] == 0


def test_signing_up_with_a_taken_address_tells_nothing_and_signs_nobody_in(ui):
    sign_up(ui)
    post_form(ui, "/ui/logout", {}, page="/ui/links")
    other = "another long password"
    answer = post_form(ui, "/ui/signup", {"email": ADA[0], "password": other, "repeat": other})
    assert answer.headers["location"] == "/ui/login?done=registered"
    assert ui.get("/ui/links", follow_redirects=False).status_code == 303


def test_signup_errors_sit_beside_their_fields(ui):
    answer = post_form(ui, "/ui/signup", {"email": ADA[0], "password": "short", "repeat": "other"})
    assert answer.status_code == 422
    assert 'id="e-repeat"' in answer.text
    answer = post_form(ui, "/ui/signup", {"email": ADA[0], "password": "short", "repeat": "short"})
    assert answer.status_code == 422
    assert 'id="e-password"' in answer.text
    assert "at least 10 characters" in answer.text
    answer = post_form(
        ui, "/ui/signup", {"email": "not an address", "password": ADA[1], "repeat": ADA[1]}
    )
    assert answer.status_code == 422
    assert 'id="e-email"' in answer.text


def test_changing_the_password_keeps_this_session_and_ends_the_others(settings, clean):
    with TestClient(create_app(settings)) as here, TestClient(create_app(settings)) as there:
        sign_up(here)
        post_form(there, "/ui/login", {"email": ADA[0], "password": ADA[1]})
        assert there.get("/ui/links").status_code == 200
        new = "a brand new password"
        fields = {"current_password": ADA[1], "new_password": new, "repeat": new}
        answer = post_form(here, "/ui/account/password", fields, page="/ui/account")
        assert answer.headers["location"] == "/ui/account?done=password"
        assert here.get("/ui/links").status_code == 200
        assert there.get("/ui/links", follow_redirects=False).status_code == 303


def test_a_wrong_current_password_is_said_beside_it(ada):
    fields = {"current_password": "not the one", "new_password": "x" * 12, "repeat": "x" * 12}
    answer = post_form(ada, "/ui/account/password", fields, page="/ui/account")
    assert answer.status_code == 422
    assert 'id="e-current_password"' in answer.text


def test_a_disabled_account_is_signed_out_at_once(ada, clean):
    query(clean.database_url, "UPDATE users SET disabled = true")
    answer = ada.get("/ui/links", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/ui/login")
    answer = post_form(ada, "/ui/login", {"email": ADA[0], "password": ADA[1]})
    assert answer.status_code == 401


def test_closed_registration_says_so(settings):
    closed = settings.model_copy(update={"registration_open": False})
    with TestClient(create_app(closed)) as client:
        page = client.get("/ui/signup")
        assert "Registration is closed" in page.text


def test_a_copied_session_cookie_spent_elsewhere_ends_the_session(ui):
    """The cookie is a refresh token: spent at /auth/refresh by whoever copied it, it
    ends its whole session, the copier's new tokens too (as a reuse does there)."""
    sign_up(ui)
    copied = ui.cookies.get("shorty_session")
    stolen = ui.post("/api/v1/auth/refresh", json={"refresh_token": copied})
    assert stolen.status_code == 200
    assert ui.get("/ui/links", follow_redirects=False).status_code == 303
    again = ui.post("/api/v1/auth/refresh", json={"refresh_token": stolen.json()["refresh_token"]})
    assert again.status_code == 401
    access = {"Authorization": f"Bearer {stolen.json()['access_token']}"}
    assert ui.get("/api/v1/urls", headers=access).status_code == 401


def test_every_form_of_the_app_checks_its_csrf_token():
    """Each POST route's endpoint is one of the guard's (ui/guard.py): none checks the
    token itself, so none can forget to."""
    from starlette.routing import Route

    from shorty.ui.app import create_ui

    posts = [
        route
        for route in create_ui(lambda scope, receive, send: None).routes
        if isinstance(route, Route) and "POST" in (route.methods or ())
    ]
    assert len(posts) > 15
    unguarded = [r.path for r in posts if not getattr(r.endpoint, "checks_csrf", False)]
    assert unguarded == []
