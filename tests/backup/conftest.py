"""Fixtures of the backup tests: a database Shorty has used (links, users, keys,
clicks ingested and rolled up, made through the API, the redirect service and the
worker), and a scratch database to restore into."""

import asyncio
import secrets

import pytest
from starlette.testclient import TestClient

from shorty import embedded
from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from tests.api.helpers import shorten
from tests.helpers import another_key, roll_up, scalar, user_with_key
from tests.worker.helpers import with_consumer


@pytest.fixture
def scratch(stack):
    """An empty database on the test server, dropped afterwards; its URL."""
    name = f"shorty_scratch_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    yield url
    asyncio.run(embedded.drop_database(stack.admin_url, name))


async def ingest_all(consumer, client, ingester):
    total = 0
    while (taken := await consumer.step(block_ms=100)) > 0:
        total += taken
    return total


@pytest.fixture
def seeded(clean, settings):
    """Links, users, API keys and clicks in the test database; the codes made."""
    ada_id, ada_key = user_with_key(clean.database_url, "ada@example.com")
    another_key(clean.database_url, ada_id)
    user_with_key(clean.database_url, "root@example.com", role="admin", scopes=("admin",))
    with TestClient(create_api(settings)) as api:
        codes = [shorten(api, ada_key, f"https://example.com/{n}") for n in range(5)]
        codes.append(shorten(api, ada_key, "https://example.org/kept", alias="restored"))
    with_consumer(clean, lambda consumer, client, ingester: consumer.ensure_group())
    with TestClient(create_redirect(settings)) as redirect:
        for code in (*codes, "restored", "restored"):
            assert redirect.get(f"/{code}", follow_redirects=False).status_code == 302
    # The redirect service flushed its clicks to the stream when it stopped.
    assert with_consumer(clean, ingest_all) == len(codes) + 2
    roll_up(clean.database_url)
    assert scalar(clean.database_url, "SELECT count(*) FROM click_rollups") > 0
    return codes
