"""The web app over HTTP (Starlette's TestClient against the API app, with the real
PostgreSQL and Redis): what a browser sends, without a browser. tests/ui drives
Chromium through the same pages."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.helpers import user_with_password

ADA = ("ada@example.com", "correct horse battery")
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def post_form(client: TestClient, path: str, fields: dict[str, str], *, page: str = "") -> object:
    """Open ``page`` (``path`` itself by default) for its CSRF token, then POST the form."""
    token = csrf_of(client.get(page or path).text)
    return client.post(path, data={"csrf": token, **fields}, follow_redirects=False)


def sign_up(client: TestClient, email: str = ADA[0], password: str = ADA[1]) -> None:
    answer = post_form(
        client, "/ui/signup", {"email": email, "password": password, "repeat": password}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/links?done=signed-up"


@pytest.fixture
def ui(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        yield client


@pytest.fixture
def ada(ui: TestClient) -> TestClient:
    """The client, signed up and in as Ada."""
    sign_up(ui)
    return ui


ROOT = ("root@example.com", "an admin's long password")


def make_admin(database_url: str) -> None:
    user_with_password(database_url, *ROOT, role="admin")


@pytest.fixture
def root(settings, clean):
    make_admin(clean.database_url)
    with TestClient(create_app(settings)) as client:
        post_form(client, "/ui/login", {"email": ROOT[0], "password": ROOT[1]})
        yield client
