"""The circuit breakers under real faults (issue #14, "Circuit breakers").

PostgreSQL paused behind ``tests.faults.Proxy``: the first calls each wait for their
deadline, and once SHORTY_DB_BREAKER_THRESHOLD of them have failed the breaker is
open: the API and the redirect service answer 503 at once instead of each waiting
SHORTY_DB_TIMEOUT. After PostgreSQL resumes and the cool-down passes, one call
probes and traffic is back without a restart. The worker's loops stop calling a
Redis that was cut until its breaker lets one probe."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import redis.asyncio as aredis
from prometheus_client import REGISTRY
from redis.exceptions import RedisError
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.cache.guard import RedisGuard
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from shorty.worker.main import _forever
from tests.chaos.helpers import through, timed
from tests.conftest import PUBLIC_URL
from tests.faults import Proxy
from tests.helpers import bearer, user_with_key, wait_for
from tests.redirect.helpers import add_link

DB_TIMEOUT = 2.0
THRESHOLD = 2
COOLDOWN = 2.0
FAST = 0.5  # an answer from an open breaker: well under DB_TIMEOUT, on a loaded machine too


def breaker_settings(clean, proxy: Proxy) -> Settings:
    return Settings(
        database_url=through(proxy, clean.database_url),
        redis_url=clean.redis_url,
        public_url=PUBLIC_URL,
        redis_timeout=0.3,
        ready_timeout=0.5,
        db_timeout=DB_TIMEOUT,
        db_acquire_timeout=DB_TIMEOUT,
        db_pool_max=2,
        db_breaker_threshold=THRESHOLD,
        db_breaker_cooldown=COOLDOWN,
        # Budgets longer than the PostgreSQL deadline: these tests show the breaker
        # against SHORTY_DB_TIMEOUT (the deadlines' own tests: test_deadline.py).
        redirect_deadline=DB_TIMEOUT + 1,
        api_deadline=DB_TIMEOUT + 1,
    )


def state(dependency: str) -> float | None:
    return REGISTRY.get_sample_value("shorty_breaker_state", {"dependency": dependency})


def transitions(dependency: str, to: str) -> float:
    labels = {"dependency": dependency, "to": to}
    return REGISTRY.get_sample_value("shorty_breaker_transitions_total", labels) or 0.0


def test_api_answers_at_once_while_the_postgres_breaker_is_open(clean, postgres_proxy):
    settings = breaker_settings(clean, postgres_proxy)
    _, key = user_with_key(clean.database_url, "ada@example.com")
    opened, closed = transitions("postgres", "open"), transitions("postgres", "closed")
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        listing = lambda: client.get("/api/v1/urls", headers=bearer(key))  # noqa: E731
        assert listing().status_code == 200
        assert client.get("/readyz").json()["breakers"] == {"postgres": "closed", "redis": "closed"}
        postgres_proxy.pause()
        try:
            for _ in range(THRESHOLD):  # each waits for its deadline, and counts
                response, elapsed = timed(listing)
                assert response.status_code == 503, response.text
                assert elapsed > DB_TIMEOUT / 2, f"answered after {elapsed:.2f} s"
            assert state("postgres") == 1  # open
            # Open: more callers than the pool has connections, each answered at once.
            with ThreadPoolExecutor(6) as callers:
                answers = list(callers.map(lambda _: timed(listing), range(6)))
            body = {"target": "https://example.com/while-open"}
            answers.append(
                timed(lambda: client.post("/api/v1/shorten", json=body, headers=bearer(key)))
            )
            for response, elapsed in answers:
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "5"
                assert response.json()["type"].endswith("/service-unavailable")
                assert elapsed < FAST, f"answered after {elapsed:.2f} s"
            ready = client.get("/readyz")  # still asks PostgreSQL itself
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgres"] == "down"
            assert ready.json()["breakers"]["postgres"] == "open"
        finally:
            postgres_proxy.resume()
        # After the cool-down one call probes PostgreSQL: traffic is back, no restart.
        wait_for(
            lambda: listing().status_code == 200,
            COOLDOWN + DB_TIMEOUT + 5,
            "the API to answer again",
        )
        assert state("postgres") == 0
        assert client.get("/readyz").json()["breakers"]["postgres"] == "closed"
        body = {"target": "https://example.com/after"}
        assert client.post("/api/v1/shorten", json=body, headers=bearer(key)).status_code == 201
    assert transitions("postgres", "open") - opened == 1
    assert transitions("postgres", "closed") - closed == 1


def test_redirect_answers_uncached_codes_at_once_while_the_breaker_is_open(clean, postgres_proxy):
    settings = breaker_settings(clean, postgres_proxy)
    for code in ("warm1", "cold1", "cold2"):
        add_link(clean.database_url, code, f"https://{code}.example")
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        assert client.get("/warm1").status_code == 302
        postgres_proxy.pause()
        try:
            for _ in range(THRESHOLD):  # each lookup waits for SHORTY_DB_TIMEOUT
                cold, elapsed = timed(lambda: client.get("/cold1"))
                assert cold.status_code == 503
                assert elapsed > DB_TIMEOUT / 2, f"answered after {elapsed:.2f} s"
            assert state("postgres") == 1
            for code in ("cold1", "cold2", "cold1"):
                cold, elapsed = timed(lambda code=code: client.get(f"/{code}"))
                assert cold.status_code == 503
                assert cold.headers["retry-after"] == "5"
                assert elapsed < FAST, f"answered after {elapsed:.2f} s"
            assert client.get("/warm1").status_code == 302  # known links keep going
            assert client.get("/readyz").json()["breakers"]["postgres"] == "open"
        finally:
            postgres_proxy.resume()
        wait_for(
            lambda: client.get("/cold2").status_code == 302,
            COOLDOWN + DB_TIMEOUT + 5,
            "uncached links to redirect again",
        )
        assert client.get("/cold1").status_code == 302
        assert state("postgres") == 0


def test_a_worker_loop_leaves_a_cut_redis_alone_until_its_breaker_probes(clean, redis_proxy):
    """A job step that uses Redis (as the consumers and the relay do) is not run while
    the Redis breaker is open; once Redis is back, the probe closes the breaker."""
    cooldown = 1.0
    guard = RedisGuard(cooldown, threshold=2)
    steps: list[bool] = []  # one item per step run: did Redis answer?

    async def scenario():
        client = aredis.Redis.from_url(
            through(redis_proxy, clean.redis_url), socket_timeout=0.3, socket_connect_timeout=0.3
        )
        stop = asyncio.Event()

        async def step() -> bool:
            try:
                await client.ping()
            except RedisError:
                steps.append(False)
                raise
            steps.append(True)
            return False

        loop = asyncio.create_task(_forever("test job", step, stop, idle=0.02, redis=guard))
        try:
            await wait_async(lambda: len(steps) >= 3)
            redis_proxy.cut()
            await wait_async(lambda: guard.state == "open")
            failed_while_closed = steps.count(False)
            assert failed_while_closed == 2  # the threshold: then no more calls
            opened_at = time.monotonic()
            await asyncio.sleep(cooldown / 2)
            assert steps.count(False) == failed_while_closed
            assert guard.state == "open"
            redis_proxy.restore()
            await wait_async(lambda: guard.state == "closed")
            assert time.monotonic() - opened_at >= cooldown * 0.9  # not before the cool-down
            assert steps[-1] is True
            assert steps.count(False) == failed_while_closed  # the probe itself succeeded
        finally:
            stop.set()
            await asyncio.wait_for(loop, 10)
            await client.aclose()

    asyncio.run(scenario())


async def wait_async(check, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)
