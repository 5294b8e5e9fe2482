"""Per-request deadlines under real faults (issue #14, "Deadlines, not only
timeouts"): a request in flight on a paused PostgreSQL answers 503 by its deadline
+ 100 ms, although SHORTY_DB_TIMEOUT and SHORTY_DB_ACQUIRE_TIMEOUT (5 s) are far
longer; and the retry rule: a read whose connection is cut under it is retried once
on a fresh connection and succeeds, a write is never retried.

The services reach the test PostgreSQL through ``tests.faults.Proxy``."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.resilience.breaker import Breaker
from shorty.store.db import create_pool
from shorty.store.errors import UNAVAILABLE
from shorty.store.links import LinkStore
from tests.chaos.helpers import quantile, settings_for, through, timed
from tests.helpers import bearer, scalar, user_with_key, wait_for
from tests.redirect.helpers import add_link

GUARANTEE = 0.1  # no answer later than the deadline + this
TARGET = "https://example.com/written-at-most-once"


def paused_settings(clean, proxy, **extra):
    """PostgreSQL through ``proxy``, its own timeouts at their 5 s defaults, the breaker
    off (each request meets the fault itself)."""
    return settings_for(
        clean,
        database_url=through(proxy, clean.database_url),
        db_pool_max=2,
        db_breaker_cooldown=0,
        **extra,
    )


def test_api_requests_in_flight_on_a_paused_postgres_answer_by_their_deadline(
    clean, postgres_proxy
):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    config = paused_settings(clean, postgres_proxy, api_deadline=1.0)
    assert config.db_timeout == config.db_acquire_timeout == 5.0  # the old bound
    with TestClient(create_api(config), raise_server_exceptions=False) as client:
        listing = lambda: client.get("/api/v1/urls", headers=bearer(key))  # noqa: E731
        assert listing().status_code == 200
        postgres_proxy.pause()
        try:
            # More callers than connections: two hold a query, four wait for a connection.
            with ThreadPoolExecutor(6) as callers:
                answers = list(callers.map(lambda _: timed(listing), range(6)))
        finally:
            postgres_proxy.resume()
        seconds = [elapsed for _, elapsed in answers]
        print(
            f"API, PostgreSQL paused, deadline 1 s: {len(answers)} answers,"
            f" max {max(seconds) * 1000:.0f} ms"
        )
        for response, _ in answers:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
            assert response.json()["type"].endswith("/deadline-exceeded")
        assert max(seconds) <= config.api_deadline + GUARANTEE
        # Connections closed at the deadline are replaced: back without a restart.
        wait_for(lambda: listing().status_code == 200, 5, "the API to answer again")


def test_a_redirect_in_flight_on_a_paused_postgres_answers_by_its_deadline(clean, postgres_proxy):
    for n in range(4):
        add_link(clean.database_url, f"cold{n}", f"https://cold{n}.example")
    add_link(clean.database_url, "warm", "https://warm.example")
    config = paused_settings(clean, postgres_proxy)  # SHORTY_REDIRECT_DEADLINE: 0.5 s
    with TestClient(create_redirect(config), follow_redirects=False) as client:
        assert client.get("/warm").status_code == 302
        postgres_proxy.pause()
        try:
            with ThreadPoolExecutor(4) as callers:
                answers = list(
                    callers.map(lambda n: timed(lambda: client.get(f"/cold{n}")), range(4))
                )
            hot, hot_seconds = timed(lambda: client.get("/warm"))
        finally:
            postgres_proxy.resume()
        seconds = [elapsed for _, elapsed in answers]
        print(
            f"redirect, PostgreSQL paused, deadline {config.redirect_deadline} s:"
            f" uncached p50 {quantile(seconds, 0.5) * 1000:.0f} ms,"
            f" max {max(seconds) * 1000:.0f} ms; cached {hot_seconds * 1000:.1f} ms"
        )
        for response, _ in answers:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
        assert max(seconds) <= config.redirect_deadline + GUARANTEE
        assert hot.status_code == 302
        wait_for(lambda: client.get("/cold0").status_code == 302, 5, "cold0 to redirect")


def test_a_read_whose_connection_is_cut_is_retried_once(clean, postgres_proxy):
    user_id, key = user_with_key(clean.database_url, "ada@example.com")
    add_link(clean.database_url, "cut", "https://cut.example", owner_id=user_id)
    config = paused_settings(clean, postgres_proxy, redirect_deadline=5.0, api_deadline=5.0)
    with (
        TestClient(create_redirect(config), follow_redirects=False) as redirects,
        TestClient(create_api(config), raise_server_exceptions=False) as api,
        ThreadPoolExecutor(1) as caller,
    ):
        calls = {
            "redirect lookup": (lambda: redirects.get("/cut"), 302),
            "API key lookup and link read": (
                lambda: api.get("/api/v1/urls/cut", headers=bearer(key)),
                200,
            ),
        }
        for name, (call, expected) in calls.items():
            postgres_proxy.pause()
            pending = caller.submit(timed, call)
            wait_for(lambda: postgres_proxy.held, 5, "the read to reach PostgreSQL")
            postgres_proxy.cut()  # the connection dies under the query...
            postgres_proxy.restore()  # ...and a new one would work
            response, elapsed = pending.result(10)
            print(f"{name} through a cut connection: {response.status_code} in {elapsed:.3f} s")
            assert response.status_code == expected, response.text


def test_a_write_whose_connection_is_cut_is_not_retried(clean, postgres_proxy):
    user_id, _ = user_with_key(clean.database_url, "ada@example.com")
    config = paused_settings(clean, postgres_proxy)

    async def scenario() -> BaseException | None:
        pool = await create_pool(
            config, config.require_servers()[0], Breaker("t", threshold=5, cooldown=0)
        )
        try:
            store = LinkStore(pool)
            postgres_proxy.pause()
            write = asyncio.create_task(store.create({"target": TARGET}, owner_id=user_id))
            await asyncio.to_thread(wait_for, lambda: postgres_proxy.held, 5, "the write held")
            postgres_proxy.cut()
            postgres_proxy.restore()  # a retry would now succeed
            try:
                await asyncio.wait_for(write, 10)
            except UNAVAILABLE as exc:
                return exc
            return None
        finally:
            await pool.close()

    failure = asyncio.run(scenario())
    print(f"write through a cut connection: {type(failure).__name__}, not retried")
    assert failure is not None  # the caller's 503, not a silent second try
    assert scalar(clean.database_url, "SELECT count(*) FROM urls WHERE target = $1", TARGET) == 0
