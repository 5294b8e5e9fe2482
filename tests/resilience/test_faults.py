"""What one process does with the experiments it knows (resilience/faults.py), on a
clock the test moves: when each starts and ends, and what a call meets meanwhile.
What the services do about it, with real servers: tests/chaos/test_experiments.py."""

import asyncio
import logging
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shorty.core.chaos import Experiment
from shorty.resilience.faults import Faults, bypassed
from shorty.store.errors import UNAVAILABLE

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def experiment(id_, dependency="postgres", kind="outage", seconds=10, **params) -> Experiment:
    return Experiment(
        id=id_,
        dependency=dependency,
        kind=kind,
        latency_ms=params.get("latency_ms"),
        rate=params.get("rate"),
        started_at=NOW,
        expires_at=NOW + timedelta(seconds=seconds),
        stopped_at=None,
        created_by=1,
    )


def active(dependency, kind):
    labels = {"dependency": dependency, "kind": kind}
    return REGISTRY.get_sample_value("shorty_chaos_active", labels)


def injected(dependency, kind):
    labels = {"dependency": dependency, "kind": kind}
    return REGISTRY.get_sample_value("shorty_chaos_injected_total", labels) or 0.0


def test_an_experiment_ends_on_the_local_clock_without_another_poll(caplog):
    clock = Clock()
    faults = Faults(clock=clock)
    caplog.set_level(logging.WARNING, "shorty.resilience.faults")
    # PostgreSQL's now is 4 s into a 10 s experiment: 6 s are left, whatever this
    # process's wall clock says.
    faults.update([experiment(1)], NOW + timedelta(seconds=4))
    assert [e.id for e in faults.active] == [1]
    assert active("postgres", "outage") == 1
    with pytest.raises(UNAVAILABLE):
        asyncio.run(faults.before_postgres(5.0))
    clock.now += 5.9
    assert [e.id for e in faults.active] == [1]
    clock.now += 0.2  # no poll came: it ends at its own time
    asyncio.run(faults.before_postgres(5.0))  # goes through
    assert faults.active == []
    assert active("postgres", "outage") == 0
    # A late poll that still lists it does not start it again.
    faults.update([experiment(1)], NOW + timedelta(seconds=9.99))
    assert faults.active == []
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("chaos experiment #1 postgres outage applied in this process")
    assert lines[1] == "chaos experiment #1 postgres outage ended in this process: expired"
    assert len(lines) == 2


def test_one_no_longer_listed_was_stopped_and_the_other_dependency_goes_on(caplog):
    faults = Faults(clock=Clock())
    caplog.set_level(logging.WARNING, "shorty.resilience.faults")
    redis_latency = experiment(2, "redis", "latency", latency_ms=50)
    faults.update([experiment(1), redis_latency], NOW)
    faults.update([redis_latency], NOW + timedelta(seconds=1))
    assert [e.id for e in faults.active] == [2]
    assert "chaos experiment #1 postgres outage ended in this process: stopped" in caplog.text
    assert "#2 redis latency latency_ms=50 applied" in caplog.text


def test_the_error_rate_is_the_share_of_calls_that_fail():
    faults = Faults(clock=Clock(), chance=random.Random(7).random)
    faults.update([experiment(3, "redis", "error", rate=0.3)], NOW)
    before = injected("redis", "error")
    failed = 0
    for _ in range(2000):
        try:
            asyncio.run(faults.before_redis(0.5))
        except RedisConnectionError:  # what redis-py raises for an unreachable server
            failed += 1
    print(f"error rate 0.3: {failed / 2000:.3f} of 2000 calls failed")
    assert 0.25 < failed / 2000 < 0.35
    assert injected("redis", "error") - before == failed


def test_latency_is_waited_and_bounded_by_the_callers_deadline():
    faults = Faults(clock=Clock())
    faults.update([experiment(4, "redis", "latency", latency_ms=150)], NOW)

    async def timed(deadline):
        started = time.monotonic()
        await faults.before_redis(deadline)
        return time.monotonic() - started

    waited = asyncio.run(timed(1.0))
    print(f"redis latency 150 ms: waited {waited * 1000:.0f} ms")
    assert waited >= 0.15
    started = time.monotonic()
    with pytest.raises(RedisTimeoutError, match="deadline"):
        asyncio.run(timed(0.1))  # the call's own deadline comes first: as a slow server
    assert time.monotonic() - started < 0.15


def test_bypassed_calls_meet_nothing():
    faults = Faults(clock=Clock())
    faults.update([experiment(5, "postgres", "outage")], NOW)

    async def readiness_check():
        with bypassed():
            await faults.before_postgres(1.0)

    asyncio.run(readiness_check())
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(faults.before_postgres(1.0))
