import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.helpers import user_with_key


@pytest.fixture
def api(settings):
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def ada(clean):
    """A plain user's id and key."""
    return user_with_key(clean.database_url, "ada@example.com")


@pytest.fixture
def bob(clean):
    return user_with_key(clean.database_url, "bob@example.com")


@pytest.fixture
def admin(clean):
    return user_with_key(
        clean.database_url,
        "root@example.com",
        role="admin",
        scopes=("admin", "urls:read", "urls:write", "stats:read"),
    )
