"""The worker process under a PostgreSQL fault, and with PostgreSQL and Redis both
down (issue #14's degradation matrix, worker column), with real processes.

`shorty serve worker` reaches the test's PostgreSQL and Redis through fault proxies
(tests/faults.py); a `shorty serve redirect` answers steady traffic and writes its
clicks through the same Redis proxy (its PostgreSQL directly, so it keeps
answering). Mid-load, PostgreSQL is paused (a SIGSTOPped or hung server) or cut (a
crashed one), or paused while Redis is cut, for a few seconds. The worker must not
exit, must not spin (its CPU time and its connection attempts during the outage are
bounded), and once the stores are back it stores every click answered, exactly
once: each request is traceable click by click (tests/chaos/traffic.py). One stack
serves the module; each scenario has its own links and its own clicks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import asyncpg
import psutil
import pytest
import redis

from tests.chaos.helpers import postgres_socket, redis_socket, through
from tests.chaos.traffic import Traffic, clicks_drained, failed, redirected, stored_clicks
from tests.conftest import TABLES, Stack
from tests.e2e.processes import Service, get, service_env
from tests.faults import Proxy
from tests.helpers import free_port, query, scalar
from tests.redirect.helpers import add_link

pytestmark = pytest.mark.e2e

OUTAGE = 3.0  # seconds the stores are away
WARM, TAIL = 1.0, 1.0  # seconds of traffic before the fault and after the stores return
RATE = 100  # redirects per second
DB_TIMEOUT = 1.0  # the worker's SHORTY_DB_TIMEOUT and SHORTY_DB_ACQUIRE_TIMEOUT
RECOVERY = 20.0  # bound on the wait for the backlog to drain
# A worker that spins burns a core; one that backs off (at most 1 s between tries of
# each job, breakers open) uses a few percent. The bound leaves room for a busy
# machine and for the batches it still parses while PostgreSQL is away.
CPU_SHARE = 0.35
CONNECTS_PER_SECOND = 10  # PostgreSQL connection attempts during the outage, at most


@dataclass
class World:
    stack: Stack
    postgres: Proxy
    redis: Proxy
    worker: Service
    redirect: Service
    metrics: int


@pytest.fixture(scope="module")
def world(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    asyncio.run(_truncate(stack.database_url))
    client = redis.Redis.from_url(stack.redis_url)
    client.flushdb()
    client.close()
    logs = tmp_path_factory.mktemp("worker-outage") / "services.log"
    with (
        Proxy(postgres_socket(stack.database_url)) as postgres,
        Proxy(redis_socket(stack.redis_url)) as redis_proxy,
    ):
        redis_url = through(redis_proxy, stack.redis_url)
        worker_env = service_env(
            through(postgres, stack.database_url),
            redis_url,
            SHORTY_DB_TIMEOUT=str(DB_TIMEOUT),
            SHORTY_DB_ACQUIRE_TIMEOUT=str(DB_TIMEOUT),
            SHORTY_LOG_LEVEL="INFO",
        )
        redirect_env = service_env(stack.database_url, redis_url, SHORTY_REDIS_TIMEOUT="0.3")
        metrics = free_port()
        worker = Service("worker", worker_env, logs, metrics_port=metrics)
        try:
            redirect = Service("redirect", redirect_env, logs)
            try:
                yield World(stack, postgres, redis_proxy, worker, redirect, metrics)
            finally:
                redirect.kill()
        finally:
            worker.kill()


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


def count_stored(world: World, name: str) -> int:
    return len(stored_clicks(world.stack.database_url, name))


@pytest.mark.parametrize(
    ("name", "fault"),
    [
        ("pgpaused", {"postgres": "pause"}),
        ("pgcut", {"postgres": "cut"}),
        ("bothdown", {"postgres": "pause", "redis": "cut"}),
    ],
)
def test_the_worker_waits_out_an_outage_and_stores_every_click_once(world, name, fault):
    codes = [f"{name}{i}" for i in range(3)]
    for code in codes:
        add_link(world.stack.database_url, code)
    proxies = {"postgres": world.postgres, "redis": world.redis}
    worker = psutil.Process(world.worker.pid)
    with Traffic({name: world.redirect.port}, codes, rate=RATE, threads=2) as traffic:
        time.sleep(WARM)
        # The pipeline runs before the fault: clicks reach PostgreSQL.
        deadline = time.monotonic() + 10
        while count_stored(world, name) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count_stored(world, name) > 0
        cpu = sum(worker.cpu_times()[:2])
        connects = world.postgres.accepted
        for dependency, how in fault.items():
            getattr(proxies[dependency], how)()
        down_at = time.monotonic()
        time.sleep(OUTAGE)
        used = sum(worker.cpu_times()[:2]) - cpu
        connects = world.postgres.accepted - connects
        stored_during = count_stored(world, name)
        for proxy in proxies.values():
            proxy.restore()
        back_at = time.monotonic()
        outage = back_at - down_at
        # Recovery, while traffic goes on: the first click stored after the return.
        first = None
        while time.monotonic() < back_at + TAIL or first is None:
            if count_stored(world, name) > stored_during:
                first = time.monotonic() - back_at
                break
            if time.monotonic() > back_at + RECOVERY:
                break
            time.sleep(0.05)
        time.sleep(max(0.0, back_at + TAIL - time.monotonic()))
    # Then the backlog: every click answered is stored and the stream is drained.
    answered = redirected(traffic.answers)
    drained = None
    while time.monotonic() < back_at + RECOVERY:
        if count_stored(world, name) >= len(answered) and clicks_drained(world.stack.redis_url):
            drained = time.monotonic() - back_at
            break
        time.sleep(0.05)
    time.sleep(0.5)  # a click stored twice would show now

    errors = failed(traffic.answers)
    print(
        f"{name}: {outage:.1f} s outage ({fault}); {len(traffic.answers)} redirects"
        f" answered, {len(errors)} errors; worker CPU {used:.2f} s"
        f" ({used / outage:.0%} of the outage), {connects} PostgreSQL connection"
        f" attempts; first click stored {seconds(first)} after the return, backlog drained"
        f" in {seconds(drained)}"
    )
    assert world.worker.alive, world.worker.tail()
    assert get(world.metrics, "/livez")[0] == 200
    assert errors == []
    stored_seq = stored_clicks(world.stack.database_url, name)
    assert len(stored_seq) == len(set(stored_seq)), "a click stored twice"
    assert set(stored_seq) == answered
    counted = scalar(
        world.stack.database_url,
        "SELECT sum(click_count) FROM urls WHERE code = ANY($1::text[])",
        codes,
    )
    assert counted == len(answered)
    assert first is not None
    assert drained is not None
    assert used < CPU_SHARE * outage, f"the worker spun: {used:.2f} s of CPU"
    assert connects <= CONNECTS_PER_SECOND * outage
    held = query(
        world.stack.database_url,
        "SELECT count(*) FROM clicks GROUP BY click_id HAVING count(*) > 1",
    )
    assert held == []
