"""Load shedding (issue #14): past a bound of work in flight, 503 with Retry-After at
once instead of queueing; the redirect service sheds lookups that go past its LRU
before it sheds an LRU hit; probes are never shed; all is normal once the load
is gone.

The load is real: PostgreSQL paused behind ``tests.faults.Proxy`` holds the first
requests in flight (each waits up to its SHORTY_DB_TIMEOUT), and the next ones
meet the bound."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from tests.chaos.helpers import settings_for, through, timed
from tests.faults import Proxy
from tests.helpers import bearer, user_with_key, wait_for
from tests.redirect.helpers import add_link

DB_TIMEOUT = 6.0  # how long a held request waits; a shed one answers far sooner
AT_ONCE = 1.5  # seconds a shed answer may take on a loaded two-core machine
HELD = 2  # requests the test holds in flight (the pool has as many connections)


def settings(clean, proxy, **bounds):
    return settings_for(
        clean,
        database_url=through(proxy, clean.database_url),
        db_timeout=DB_TIMEOUT,
        db_acquire_timeout=DB_TIMEOUT,
        db_pool_max=HELD,
        # Budgets longer than that, so the held requests stay held for the test.
        redirect_deadline=DB_TIMEOUT + 1,
        api_deadline=DB_TIMEOUT + 1,
        **bounds,
    )


def shed_count(service: str, bound: str) -> float:
    value = REGISTRY.get_sample_value(
        "shorty_shed_requests_total", {"service": service, "bound": bound}
    )
    return value or 0.0


def hold(callers: ThreadPoolExecutor, proxy: Proxy, calls):
    """Start ``calls`` and return their futures once each waits on the paused server."""
    held = [callers.submit(call) for call in calls]
    wait_for(lambda: proxy.held >= len(calls), 10, "the held requests to reach PostgreSQL")
    return held


def links(clean, *codes: str) -> None:
    for code in codes:
        add_link(clean.database_url, code, f"https://{code}.example/")


def test_redirect_sheds_lookups_past_the_lru_but_serves_lru_hits(clean, postgres_proxy, caplog):
    cold = [f"cold{n}" for n in range(6)]
    links(clean, "warm", *cold)
    config = settings(clean, postgres_proxy, max_in_flight=50, max_lookups_in_flight=HELD)
    before = shed_count("redirect", "lookups")
    with TestClient(create_redirect(config), follow_redirects=False) as client:
        assert client.get("/warm").status_code == 302  # now in the LRU
        postgres_proxy.pause()
        try:
            with ThreadPoolExecutor(8) as callers:
                held = hold(
                    callers, postgres_proxy, [lambda c=c: client.get(f"/{c}") for c in cold[:2]]
                )
                with caplog.at_level(logging.WARNING, "shorty.web.shedding"):
                    extra = list(
                        callers.map(lambda c: timed(lambda: client.get(f"/{c}")), cold[2:])
                    )
                for response, elapsed in extra:
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"] == "1"
                    assert response.headers["content-type"].startswith("text/plain")
                    assert elapsed < AT_ONCE, f"shed after {elapsed:.1f} s"
                assert not any(one.done() for one in held)  # those still wait on PostgreSQL
                for _ in range(3):
                    hot, elapsed = timed(lambda: client.get("/warm"))
                    assert hot.status_code == 302
                    assert elapsed < AT_ONCE
                assert client.get("/livez").status_code == 200
                postgres_proxy.resume()
                assert [one.result(DB_TIMEOUT + 5).status_code for one in held] == [302, 302]
        finally:
            postgres_proxy.resume()
        assert shed_count("redirect", "lookups") - before == len(cold) - 2
        lines = [r for r in caplog.records if r.name == "shorty.web.shedding"]
        assert len(lines) == 1, [r.getMessage() for r in lines]  # in bulk, not per request
        assert "SHORTY_MAX_LOOKUPS_IN_FLIGHT" in lines[0].getMessage()
        for code in cold:  # back to normal
            assert client.get(f"/{code}").status_code == 302


def in_flight(service: str) -> float:
    return REGISTRY.get_sample_value("shorty_http_requests_in_flight", {"service": service}) or 0


def test_redirect_sheds_even_lru_hits_past_its_hard_bound_never_probes(clean, postgres_proxy):
    links(clean, "warm", "cold")
    # Lookups past the LRU get half of the hard bound: one here.
    config = settings(clean, postgres_proxy, max_in_flight=HELD, max_lookups_in_flight=HELD)
    assert config.lookup_bound == 1
    before = shed_count("redirect", "requests")
    with TestClient(create_redirect(config), follow_redirects=False) as client:
        assert client.get("/warm").status_code == 302
        postgres_proxy.pause()
        try:
            with ThreadPoolExecutor(HELD) as callers:
                # One lookup of "cold" waits on PostgreSQL; the second request for it
                # shares that lookup (no lookup slot) but takes the last request slot.
                held = hold(callers, postgres_proxy, [lambda: client.get("/cold")])
                held.append(callers.submit(lambda: client.get("/cold")))
                wait_for(lambda: in_flight("redirect") == HELD, 10, "both requests in flight")
                hot, elapsed = timed(lambda: client.get("/warm"))
                assert hot.status_code == 503
                assert hot.headers["retry-after"] == "1"
                assert elapsed < AT_ONCE
                assert client.get("/livez").status_code == 200
                assert client.get("/readyz").status_code == 200  # Redis answers: ready
                postgres_proxy.resume()
                assert [one.result(DB_TIMEOUT + 5).status_code for one in held] == [302, 302]
        finally:
            postgres_proxy.resume()
        assert shed_count("redirect", "requests") - before == 1
        assert client.get("/warm").status_code == 302


def test_api_sheds_requests_past_its_bound_with_a_problem(clean, postgres_proxy):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    config = settings(clean, postgres_proxy, max_in_flight=HELD)
    before = shed_count("api", "requests")
    with TestClient(create_api(config), raise_server_exceptions=False) as client:
        listing = lambda: client.get("/api/v1/urls", headers=bearer(key))  # noqa: E731
        assert listing().status_code == 200
        postgres_proxy.pause()
        try:
            with ThreadPoolExecutor(6) as callers:
                held = hold(callers, postgres_proxy, [listing] * HELD)
                extra = list(callers.map(lambda _: timed(listing), range(4)))
                for response, elapsed in extra:
                    assert response.status_code == 503, response.text
                    assert response.headers["retry-after"] == "1"
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.json()["type"] == "https://shorty.dev/problems/overloaded"
                    assert elapsed < AT_ONCE, f"shed after {elapsed:.1f} s"
                assert not any(one.done() for one in held)
                assert client.get("/livez").status_code == 200  # probes are never shed
                ready = client.get("/readyz")  # answered (503: PostgreSQL is paused)
                assert ready.json()["checks"]["postgres"] == "down"
                postgres_proxy.resume()
                assert [one.result(DB_TIMEOUT + 5).status_code for one in held] == [200, 200]
        finally:
            postgres_proxy.resume()
        assert shed_count("api", "requests") - before == 4
        assert listing().status_code == 200
        created = client.post(
            "/api/v1/shorten", json={"target": "https://example.com/after"}, headers=bearer(key)
        )
        assert created.status_code == 201
