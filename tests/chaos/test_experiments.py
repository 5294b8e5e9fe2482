"""Fault injection for experiments (issue #14, "Mechanisms": the last bullet): an
experiment started through the admin API or `shorty chaos` reaches every service
process, which reacts as to the real fault, and ends by itself.

Real PostgreSQL and Redis throughout: the faults are the services' own injection
(``resilience/faults.py``), never a mock; the proxy of ``tests/faults.py`` stands
for a PostgreSQL that is really down. Each test prints what it measured."""

from __future__ import annotations

import asyncio
import statistics
import time

from click.testing import CliRunner
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.cli import main
from shorty.redirect.app import create_app as create_redirect
from shorty.resilience.experiments import follow
from shorty.resilience.faults import Faults
from shorty.store.chaos import ChaosStore
from tests.chaos.helpers import settings_for, through
from tests.e2e.processes import Service, get, sample, scrape, service_env
from tests.helpers import bearer, free_port, on_pool, query, user_with_key, wait_for
from tests.redirect.helpers import add_link, lookups

CHAOS = "/api/v1/admin/chaos"
APPLIED_WITHIN = 5.0  # a poll a second, on a busy machine: far above the ~1 s expected


def start(database_url: str, dependency: str, kind: str, seconds: int = 60, **params) -> int:
    """Record an experiment as the API does (``ChaosStore``); its id."""
    store = lambda pool: ChaosStore(pool).start(dependency, kind, seconds, **params)  # noqa: E731
    return on_pool(database_url, store).id


def stop(database_url: str, experiment_id: int) -> None:
    on_pool(database_url, lambda pool: ChaosStore(pool).stop(experiment_id))


def links(database_url: str, prefix: str, count: int = 200) -> list[str]:
    """``count`` links ``<prefix>0``, ``<prefix>1``...: their paths, to look each up once
    (a lookup past the process LRU, which reaches Redis or PostgreSQL)."""
    query(
        database_url,
        "INSERT INTO urls (code, target) SELECT $1 || n, 'https://' || $1 || '.example'"
        " FROM generate_series(0, $2 - 1) AS n",
        prefix,
        count,
    )
    return [f"/{prefix}{n}" for n in range(count)]


def active(dependency: str, kind: str) -> float:
    labels = {"dependency": dependency, "kind": kind}
    return REGISTRY.get_sample_value("shorty_chaos_active", labels) or 0.0


def injected(dependency: str, kind: str) -> float:
    labels = {"dependency": dependency, "kind": kind}
    return REGISTRY.get_sample_value("shorty_chaos_injected_total", labels) or 0.0


def since(started: float) -> float:
    return time.monotonic() - started


def test_a_redis_outage_sends_redirects_to_postgres_and_opens_the_breaker(clean):
    settings = settings_for(clean, chaos_enabled=True, redis_backoff=1.0)
    for code in ("before", "during"):
        add_link(clean.database_url, code, f"https://{code}.example")
    fresh = iter(links(clean.database_url, "after"))
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        assert client.get("/before").status_code == 302
        assert client.get("/readyz").json()["breakers"]["redis"] == "closed"
        failed_before = injected("redis", "outage")
        started = time.monotonic()
        experiment = start(clean.database_url, "redis", "outage")
        wait_for(lambda: active("redis", "outage") == 1, APPLIED_WITHIN, "the experiment")
        applied = since(started)
        from_postgres = lookups("postgres", "hit")
        during = client.get("/during")
        assert during.status_code == 302
        assert during.headers["location"] == "https://during.example"
        assert lookups("postgres", "hit") == from_postgres + 1  # Redis's fallback
        assert injected("redis", "outage") > failed_before
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"] == "up"  # readiness asks the real Redis
        assert ready.json()["breakers"]["redis"] == "open"  # the service's calls failed
        stopping = time.monotonic()
        stop(clean.database_url, experiment)
        wait_for(lambda: active("redis", "outage") == 0, APPLIED_WITHIN, "the stop")
        ended = since(stopping)
        # Once the breaker's cool-down (1 s) lets a probe through, Redis is used again
        # (by a lookup past the LRU: a code not looked up before, each time).
        wait_for(
            lambda: (
                client.get(next(fresh)).status_code == 302
                and client.get("/readyz").json()["breakers"]["redis"] == "closed"
            ),
            APPLIED_WITHIN,
            "the Redis breaker to close",
        )
        recovered = since(stopping)
    print(
        f"redis outage: applied {applied:.2f} s after the start, ended {ended:.2f} s after"
        f" the stop, Redis breaker closed {recovered:.2f} s after the stop"
    )


def test_a_postgres_outage_is_503_on_the_api_and_cached_links_still_redirect(clean):
    settings = settings_for(
        clean, chaos_enabled=True, db_breaker_threshold=2, db_breaker_cooldown=1.0
    )
    _, admin = user_with_key(
        clean.database_url, "root@example.com", role="admin", scopes=("admin", "urls:read")
    )
    _, ada = user_with_key(clean.database_url, "ada@example.com")
    add_link(clean.database_url, "warm", "https://warm.example")
    cold = iter(links(clean.database_url, "cold"))  # each looked up once: never from the LRU
    with (
        TestClient(create_api(settings), raise_server_exceptions=False) as api,
        TestClient(create_redirect(settings), follow_redirects=False) as redirect,
    ):
        listing = lambda: api.get("/api/v1/urls", headers=bearer(ada))  # noqa: E731
        assert listing().status_code == 200
        assert redirect.get("/warm").status_code == 302  # now in the redirect's LRU
        started = time.monotonic()
        body = {"dependency": "postgres", "kind": "outage", "seconds": 60}
        made = api.post(CHAOS, json=body, headers=bearer(admin))
        assert made.status_code == 201, made.text
        wait_for(lambda: listing().status_code == 503, APPLIED_WITHIN, "503 from the API")
        applied = since(started)
        answers = []
        for _ in range(5):
            request_started = time.monotonic()
            answers.append((listing(), since(request_started)))
        for response, _ in answers:
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert response.json()["type"].endswith("/service-unavailable")
        slowest = max(elapsed for _, elapsed in answers)
        assert slowest < 1.0, f"a 503 took {slowest:.2f} s"  # refused, not waited for
        assert api.get("/readyz").json()["breakers"]["postgres"] == "open"
        # The redirect service polls on its own: it may apply the outage a little later.
        refused = wait_for(
            lambda: (answer := redirect.get(next(cold))).status_code == 503 and answer,
            APPLIED_WITHIN,
            "the redirect service to apply it",
        )
        assert refused.headers["retry-after"] == "5"
        assert redirect.get("/warm").status_code == 302  # cached: still redirects
        # The chaos routes reach the real PostgreSQL: the outage can be listed and stopped.
        listed = api.get(CHAOS, headers=bearer(admin))
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"][0]["active"] is True
        stopping = time.monotonic()
        stopped = api.post(f"{CHAOS}/{made.json()['id']}/stop", headers=bearer(admin))
        assert stopped.status_code == 200, stopped.text
        wait_for(lambda: listing().status_code == 200, 8.0, "the API to answer again")
        recovered = since(stopping)
        wait_for(lambda: redirect.get(next(cold)).status_code == 302, 8.0, "cold codes to redirect")
    print(
        f"postgres outage: API 503 {applied:.2f} s after the start, slowest 503"
        f" {slowest * 1000:.0f} ms; API back {recovered:.2f} s after the stop"
    )


def test_latency_shows_in_measured_latency(clean):
    settings = settings_for(clean, chaos_enabled=True, db_acquire_timeout=2.0)
    _, ada = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_api(settings)) as api:

        def timings(n: int = 12) -> list[float]:
            taken = []
            for _ in range(n):
                request_started = time.monotonic()
                assert api.get("/api/v1/urls", headers=bearer(ada)).status_code == 200
                taken.append(since(request_started))
            return sorted(taken)

        baseline = timings()
        experiment = start(clean.database_url, "postgres", "latency", latency_ms=200)
        wait_for(lambda: active("postgres", "latency") == 1, APPLIED_WITHIN, "the experiment")
        slowed = timings()
        stop(clean.database_url, experiment)
        wait_for(lambda: active("postgres", "latency") == 0, APPLIED_WITHIN, "the stop")
        after = timings()
    p50 = statistics.median
    print(
        f"postgres latency 200 ms: API p50 {p50(baseline) * 1000:.0f} ms before,"
        f" {p50(slowed) * 1000:.0f} ms during (max {slowed[-1] * 1000:.0f} ms),"
        f" {p50(after) * 1000:.0f} ms after"
    )
    # Each request acquires a connection at least once (its key, then the listing).
    assert min(slowed) >= 0.2
    assert p50(slowed) >= p50(baseline) + 0.2
    assert slowed[-1] < 2.0 * 2 + 1  # each wait bounded by the acquire's deadline
    assert p50(after) < 0.2


def test_an_experiment_expires_by_itself_and_the_api_recovers(clean):
    settings = settings_for(
        clean, chaos_enabled=True, db_breaker_threshold=2, db_breaker_cooldown=1.0
    )
    _, ada = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_api(settings), raise_server_exceptions=False) as api:
        listing = lambda: api.get("/api/v1/urls", headers=bearer(ada))  # noqa: E731
        started = time.monotonic()
        start(clean.database_url, "postgres", "outage", seconds=2)
        wait_for(lambda: listing().status_code == 503, APPLIED_WITHIN, "the outage")
        # Nobody stops it: it ends at its time, then the breaker's probe closes it.
        wait_for(lambda: listing().status_code == 200, 2 + 5.0, "the API to recover")
        back = since(started)
    print(f"postgres outage of 2 s, never stopped: the API answered again {back:.2f} s after")
    assert back >= 2.0 - 0.3  # not before its end (less the poll's lag at its start)


def test_the_poll_keeps_what_it_knew_while_postgres_is_down_and_ends_it_on_time(
    clean, postgres_proxy
):
    """PostgreSQL really unreachable (the poll's own connection paused): the process
    keeps applying the experiment it knew, and ends it at its time on its own clock."""
    faults = Faults()
    seconds = 3

    async def scenario() -> tuple[float, float, float]:
        poll = asyncio.create_task(
            follow(through(postgres_proxy, clean.database_url), faults, wait=0.5)
        )
        try:
            started = time.monotonic()
            await asyncio.to_thread(start, clean.database_url, "redis", "outage", seconds)
            recorded = time.monotonic()  # the row's started_at is between the two
            while not faults.active:
                assert since(started) < APPLIED_WITHIN, "never applied"
                await asyncio.sleep(0.02)
            postgres_proxy.pause()
            await asyncio.sleep(1.5)  # the poll fails meanwhile
            assert [e.kind for e in faults.active] == ["outage"]
            while faults.active:
                assert since(started) < seconds + 2, "never ended"
                await asyncio.sleep(0.02)
            return started, recorded, time.monotonic()
        finally:
            postgres_proxy.resume()
            poll.cancel()
            await asyncio.gather(poll, return_exceptions=True)

    started, recorded, ended = asyncio.run(scenario())
    print(
        f"3 s experiment, its poll's PostgreSQL paused once applied: ended"
        f" {ended - started:.2f} s after the start was sent ({recorded - started:.2f} s to"
        " record it)"
    )
    assert started + seconds - 0.2 <= ended <= recorded + seconds + 0.5


def test_the_cli_reaches_every_process_of_a_running_stack(clean, tmp_path):
    """`shorty chaos` against a live `shorty serve api`; the experiment reaches a
    separately running redirect service and worker through their polls."""
    key = "chaos-admin-key-0123456789"
    add_link(clean.database_url, "live", "https://live.example")
    fresh = iter(links(clean.database_url, "back"))
    env = service_env(
        clean.database_url,
        clean.redis_url,
        SHORTY_CHAOS_ENABLED="true",
        SHORTY_INITIAL_API_KEY=key,
        SHORTY_REDIS_TIMEOUT="0.3",
        SHORTY_REDIS_BACKOFF="1",
    )
    api = Service("api", env, tmp_path / "api.log")  # makes the admin key: no key exists
    _, ada = user_with_key(clean.database_url, "ada@example.com")
    redirect = Service("redirect", env, tmp_path / "redirect.log", metrics_port=free_port())
    worker = Service("worker", env, tmp_path / "worker.log", metrics_port=free_port())
    off = Service("api", {**env, "SHORTY_CHAOS_ENABLED": "false"}, tmp_path / "off.log")
    url = f"http://127.0.0.1:{api.port}"
    cli = lambda *args, key=key, url=url: CliRunner().invoke(  # noqa: E731
        main, ["chaos", *args, "--api-url", url, "--api-key", key]
    )
    try:
        started = time.monotonic()
        made = cli("start", "--dependency", "redis", "--kind", "outage", "--seconds", "60")
        assert made.exit_code == 0, made.output
        assert made.output.startswith("Started experiment 1: redis outage for 60 s")
        for service in (redirect, worker):
            wait_for(
                lambda service=service: (
                    sample(
                        scrape(service.metrics_port),
                        "shorty_chaos_active",
                        dependency="redis",
                        kind="outage",
                    )
                    == 1
                ),
                APPLIED_WITHIN,
                f"the {service.kind} to apply it",
            )
        applied = since(started)
        status, headers, _ = get(redirect.port, "/live")
        assert status == 302  # from PostgreSQL
        assert headers["location"] == "https://live.example"
        metrics = scrape(redirect.metrics_port)
        assert sample(metrics, "shorty_breaker_state", dependency="redis") == 1
        assert sample(metrics, "shorty_chaos_injected_total", dependency="redis", kind="outage")
        wait_for(
            lambda: sample(
                scrape(worker.metrics_port),
                "shorty_chaos_injected_total",
                dependency="redis",
                kind="outage",
            ),
            APPLIED_WITHIN,
            "the worker's Redis calls to fail",
        )
        listed = cli("list")
        assert listed.exit_code == 0, listed.output
        header, row = listed.output.splitlines()[:2]
        assert header.split() == ["ID", "DEPENDENCY", "KIND", "PARAMS", "STARTED", "ENDS", "STATUS"]
        assert row.split()[:4] == ["1", "redis", "outage", "-"]
        assert row.split()[-1] == "active"
        # Readable refusals, each with exit code 1.
        busy = cli(
            "start", "--dependency", "redis", "--kind", "error", "--rate", "0.5", "--seconds", "5"
        )
        assert busy.exit_code == 1
        assert "experiment-running" in busy.output
        half = cli("start", "--dependency", "postgres", "--kind", "latency", "--seconds", "5")
        assert half.exit_code == 1
        assert "latency.latency_ms: Field required" in half.output
        not_admin = cli("list", key=ada)
        assert not_admin.exit_code == 1
        assert "'admin' scope" in not_admin.output
        disabled = cli("list", url=f"http://127.0.0.1:{off.port}")
        assert disabled.exit_code == 1
        assert "fault injection is off on this server" in disabled.output
        gone = cli("list", url=f"http://127.0.0.1:{free_port()}")
        assert gone.exit_code == 1
        assert "cannot reach the API" in gone.output
        unknown = cli("stop", "99")
        assert unknown.exit_code == 1
        assert "No fault-injection experiment has the id 99" in unknown.output

        stopping = time.monotonic()
        stopped = cli("stop", "1")
        assert stopped.exit_code == 0, stopped.output
        assert stopped.output.startswith("Experiment 1 (redis outage) ended at")
        wait_for(
            lambda: (
                sample(
                    scrape(redirect.metrics_port),
                    "shorty_chaos_active",
                    dependency="redis",
                    kind="outage",
                )
                == 0
            ),
            APPLIED_WITHIN,
            "the redirect service to end it",
        )
        ended = since(stopping)
        # Past the LRU, a lookup asks Redis again once the breaker's cool-down (1 s) is
        # over: a code not looked up before each time.
        fresh = iter(range(50))
        wait_for(
            lambda: (
                get(redirect.port, f"/back{next(fresh)}")[0] == 302
                and sample(
                    scrape(redirect.metrics_port), "shorty_breaker_state", dependency="redis"
                )
                == 0
            ),
            APPLIED_WITHIN,
            "the redirect service's Redis breaker to close",
        )
        recovered = since(stopping)
        assert cli("list").output.splitlines()[1].split()[-1] == "stopped"
    finally:
        for service in (off, worker, redirect, api):
            service.stop()
    print(
        f"shorty chaos: redirect and worker applied it {applied:.2f} s after the start;"
        f" the redirect service ended it {ended:.2f} s after the stop, and used Redis again"
        f" {recovered:.2f} s after it"
    )
    for name in ("redirect", "worker"):
        log = (tmp_path / f"{name}.log").read_text()
        assert "chaos experiment #1 redis outage applied in this process" in log, name
        assert "chaos experiment #1 redis outage ended in this process: stopped" in log, name


def test_an_api_started_during_a_postgres_outage_starts_and_applies_it(clean):
    """The first poll comes before serving, so a process started mid-experiment
    applies it from its first request; the API's own start-up provisioning (the
    initial admin key) reaches the real PostgreSQL, so the API starts instead of
    failing its lifespan until the experiment ends."""
    key = "chaos-admin-key-0123456789"
    settings = settings_for(clean, chaos_enabled=True, initial_api_key=key)
    start(clean.database_url, "postgres", "outage")
    with TestClient(create_api(settings), raise_server_exceptions=False) as api:
        first = api.get("/api/v1/urls", headers=bearer(key))
        assert first.status_code == 503, first.text  # the first request meets it
        assert api.get(CHAOS, headers=bearer(key)).json()["items"][0]["active"] is True
