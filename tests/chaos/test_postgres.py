"""PostgreSQL hanging or dropping connections under the running API and redirect
service: every wait is bounded by SHORTY_DB_TIMEOUT, the answer is 503 with
Retry-After (never 500, never a hang), and the services recover without a restart.

The services reach the test PostgreSQL through ``tests.faults.Proxy``: ``pause()`` is
a server that stopped answering (as under SIGSTOP), ``cut()`` one whose connections
dropped (a crash, a restart, a network cut)."""

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from tests.chaos.helpers import postgres_socket, timed
from tests.conftest import PUBLIC_URL
from tests.faults import Proxy
from tests.helpers import bearer, user_with_key, wait_for
from tests.redirect.helpers import add_link

DB_TIMEOUT = 1.0
# What a request may take past the deadline: the release of a connection whose query
# was cancelled, the event loop of a loaded two-core machine.
MARGIN = 1.5


@pytest.fixture
def proxied(clean):
    """Settings whose database is reached through a fault proxy, and the proxy."""
    parts = urlsplit(clean.database_url)
    with Proxy(postgres_socket(clean.database_url)) as proxy:
        url = f"postgresql://{parts.username}@127.0.0.1:{proxy.port}{parts.path}"
        yield (
            proxy,
            Settings(
                database_url=url,
                redis_url=clean.redis_url,
                public_url=PUBLIC_URL,
                db_timeout=DB_TIMEOUT,
                db_acquire_timeout=DB_TIMEOUT,
                db_pool_max=2,
                # The breaker off: these tests show that each wait has its deadline
                # (what an open breaker does instead: test_breaker.py).
                db_breaker_cooldown=0,
            ),
        )


def assert_unavailable(response, elapsed):
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/service-unavailable")
    assert elapsed < DB_TIMEOUT + MARGIN, f"answered after {elapsed:.1f} s"


def test_api_answers_503_within_the_deadline_while_postgres_hangs(proxied, clean):
    proxy, settings = proxied
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        listing = lambda: client.get("/api/v1/urls", headers=bearer(key))  # noqa: E731
        assert listing().status_code == 200
        proxy.pause()
        try:
            assert_unavailable(*timed(listing))
            # More calls at once than the pool has connections: the later ones wait
            # for a connection, and that wait is bounded too.
            with ThreadPoolExecutor(6) as callers:
                for answer in list(callers.map(lambda _: timed(listing), range(6))):
                    assert_unavailable(*answer)
            body = {"target": "https://example.com/paused"}
            assert_unavailable(
                *timed(lambda: client.post("/api/v1/shorten", json=body, headers=bearer(key)))
            )
        finally:
            proxy.resume()
        assert listing().status_code == 200
        created = client.post(
            "/api/v1/shorten", json={"target": "https://example.com/again"}, headers=bearer(key)
        )
        assert created.status_code == 201


def test_api_answers_503_not_500_when_connections_drop(proxied, clean):
    proxy, settings = proxied
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        listing = lambda: client.get("/api/v1/urls", headers=bearer(key))  # noqa: E731
        assert listing().status_code == 200
        # A connection dropped in the middle of a query (ConnectionDoesNotExistError).
        proxy.pause()
        with ThreadPoolExecutor(1) as caller:
            pending = caller.submit(timed, listing)
            wait_for(lambda: proxy.held, 5, "the query to reach the proxy")
            proxy.cut()
            assert_unavailable(*pending.result(10))
        try:
            for _ in range(2):  # a new connection refused
                assert_unavailable(*timed(listing))
        finally:
            proxy.restore()
        assert listing().status_code == 200


def test_redirect_answers_503_within_the_deadline_for_an_uncached_link(proxied, clean):
    proxy, settings = proxied
    for code in ("warm1", "cold1", "cold2"):
        add_link(clean.database_url, code, f"https://{code}.example")
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        assert client.get("/warm1").status_code == 302
        proxy.pause()
        try:
            for _ in range(3):
                cold, elapsed = timed(lambda: client.get("/cold1"))
                assert cold.status_code == 503
                assert cold.headers["retry-after"] == "5"
                assert elapsed < DB_TIMEOUT + MARGIN, f"answered after {elapsed:.1f} s"
            assert client.get("/warm1").status_code == 302  # known links keep going
        finally:
            proxy.resume()
        assert client.get("/cold1").status_code == 302
        proxy.pause()
        with ThreadPoolExecutor(1) as caller:
            pending = caller.submit(timed, lambda: client.get("/cold2"))
            wait_for(lambda: proxy.held, 5, "the lookup to reach the proxy")
            proxy.cut()  # dropped in the middle of the lookup
            cold, elapsed = pending.result(10)
        try:
            assert cold.status_code == 503
            assert cold.headers["retry-after"] == "5"
            assert elapsed < DB_TIMEOUT + MARGIN
        finally:
            proxy.restore()
        assert client.get("/cold2").status_code == 302
