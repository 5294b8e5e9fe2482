"""The API keys page: create (shown once), list, revoke."""

from __future__ import annotations

import re

from tests.helpers import bearer
from tests.web_ui.conftest import csrf_of


def create(client, **fields):
    token = csrf_of(client.get("/ui/keys").text)
    data = {"csrf": token, "name": "", **fields}
    return client.post("/ui/keys", data=data, follow_redirects=False)


def test_a_new_key_is_shown_once_and_works(ada):
    answer = create(ada, name="ci", scopes=["urls:read", "stats:read"], expires_at="2099-01-01")
    assert answer.status_code == 201
    assert answer.headers["cache-control"] == "no-store"
    key = re.search(r'value="(shk_[A-Za-z0-9_-]+)"', answer.text).group(1)
    assert "shown this once" in answer.text
    assert "<code>stats:read</code> <code>urls:read</code>" in answer.text
    listing = ada.get("/ui/keys").text
    assert key not in listing
    prefix = re.search(r"<code>(shk_[\w-]+)…</code>", listing).group(1)
    assert key.startswith(prefix)
    assert "<td>ci</td>" in listing
    links = ada.get("/api/v1/urls", headers=bearer(key))
    assert links.status_code == 200
    refused = ada.post("/api/v1/shorten", json={"target": "https://e.com/"}, headers=bearer(key))
    assert refused.status_code == 403  # urls:write was not ticked


def test_revoking_a_key_stops_it(ada):
    answer = create(ada, scopes=["urls:read"])
    key = re.search(r'value="(shk_[A-Za-z0-9_-]+)"', answer.text).group(1)
    key_id = re.search(r'action="/ui/keys/(\d+)/revoke"', answer.text).group(1)
    token = csrf_of(ada.get("/ui/keys").text)
    revoked = ada.post(f"/ui/keys/{key_id}/revoke", data={"csrf": token}, follow_redirects=False)
    assert revoked.headers["location"] == "/ui/keys?done=revoked"
    assert ada.get("/api/v1/urls", headers=bearer(key)).status_code == 401
    page = ada.get("/ui/keys").text
    assert ">revoked</span>" in page
    assert f'action="/ui/keys/{key_id}/revoke"' not in page


def test_a_key_needs_a_scope(ada):
    answer = create(ada)
    assert answer.status_code == 422
    assert 'id="e-scopes"' in answer.text


def test_a_plain_user_cannot_mint_an_admin_key(ada):
    assert 'value="admin"' not in ada.get("/ui/keys").text
    answer = create(ada, scopes=["admin"])
    assert answer.status_code == 403
    assert "A key cannot grant what it does not have: admin." in answer.text


def test_an_expiry_in_the_past_is_said_beside_it(ada):
    answer = create(ada, scopes=["urls:read"], expires_at="2001-01-01")
    assert answer.status_code == 422
    assert 'id="e-expires_at"' in answer.text


def test_someone_elses_key_cannot_be_revoked(ada, settings):
    from starlette.testclient import TestClient

    from shorty.api.app import create_app
    from tests.web_ui.conftest import sign_up

    answer = create(ada, scopes=["urls:read"])
    key_id = re.search(r'action="/ui/keys/(\d+)/revoke"', answer.text).group(1)
    with TestClient(create_app(settings)) as bob:
        sign_up(bob, "bob@example.com")
        token = csrf_of(bob.get("/ui/keys").text)
        assert bob.post(f"/ui/keys/{key_id}/revoke", data={"csrf": token}).status_code == 404
