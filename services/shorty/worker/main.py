"""The worker process: the outbox relay, the two consumer groups, the rollup
aggregator, housekeeping.

Each job is a loop of its own. A job that finds PostgreSQL or Redis away
pauses with a short jittered backoff and resumes where it was; the others go
on. While a dependency's circuit breaker is open, the jobs that use it wait
without calling it: PostgreSQL's pool refuses at once (``BreakerOpen``), and the
jobs that use Redis skip their step until the Redis breaker lets one probe.
SIGTERM/SIGINT stop the loops between batches, then the clients are closed
and the process exits 0; a stop that overruns its bound (``shorty.stopdeadline``)
exits 1 with what still ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from redis.exceptions import RedisError

from shorty.bootstrap import worker_deps
from shorty.cache.guard import RedisGuard
from shorty.obs.metrics import (
    DLQ_LENGTH,
    OUTBOX_OLDEST_AGE,
    OUTBOX_WAITING,
    ROLLUP_DELAY,
    ROLLUP_WAITING,
    STREAM_LAG,
    STREAM_LAG_SECONDS,
    STREAM_LENGTH,
    STREAM_PENDING,
)
from shorty.resilience.retry import full_jitter
from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.stopdeadline import STOP_SECONDS, StopDeadline
from shorty.store.errors import UNAVAILABLE
from shorty.worker.enrich import GeoIP
from shorty.worker.retention import apply_retention
from shorty.worker.streams import DLQ, Consumer

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 600.0  # retention, expired idempotency keys, old outbox rows
OBSERVE_SECONDS = 5.0  # stream and backlog metrics
BLOCK_MS = 1000  # longest wait for new entries; also how soon a stop request is noticed
OUTAGE_BASE, OUTAGE_CAP = 0.1, 1.0  # backoff while PostgreSQL or Redis is away (s)
LAG_COUNT_CAP = 1000  # Redis < 7 has no lag counter: counted up to this many
# What a backoff cures: Redis or PostgreSQL away (store.errors.UNAVAILABLE: every
# driver-level failure, a wait past its deadline) or refusing for a moment.
_TRANSIENT = (RedisError, asyncpg.PostgresError, *UNAVAILABLE)


async def run_worker(
    settings: Settings, stop: asyncio.Event | None = None, *, stop_seconds: float = STOP_SECONDS
) -> None:
    stop = stop or asyncio.Event()
    deadline = StopDeadline(stop_seconds)
    deadline.loop = asyncio.get_running_loop()

    def stop_soon() -> None:
        stop.set()
        deadline.arm()

    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            deadline.loop.add_signal_handler(sig, stop_soon)
    name = f"{socket.gethostname()}-{os.getpid()}"
    geoip = GeoIP(settings.geoip_database)
    try:
        async with open_resources(settings, redis_block_seconds=BLOCK_MS / 1000) as res:
            options: dict[str, Any] = {
                "max_deliveries": settings.max_deliveries,
                "max_retrying": settings.max_retrying,
                "claim_idle_ms": int(settings.claim_idle * 1000),
                "retry_base": settings.retry_base,
                "retry_cap": settings.retry_cap,
            }
            deps = worker_deps(settings, res, geoip)
            ingester, relay, aggregator = deps.ingester, deps.relay, deps.aggregator
            redis = deps.redis_guard
            # Several consumers in one process: one batch is parsed while another is
            # in PostgreSQL, and PostgreSQL stores two at once.
            clicks = [
                ingester.consumer(res.redis, f"{name}-{i}", **options)
                for i in range(settings.ingest_consumers)
            ]
            events = deps.cache_updater.consumer(res.redis, name, **options)

            async def housekeeping() -> bool:
                if await apply_retention(res.pool, settings.click_retention_days):
                    ingester.forget_partitions()
                pruned = await deps.idempotency.prune()
                pruned += await relay.prune(settings.outbox_retention_days)
                if pruned:
                    log.info("pruned %d expired idempotency keys and published events", pruned)
                return False

            async def observe() -> bool:
                await observe_streams(res.redis, [clicks[0], events])
                return False

            async def observe_backlogs() -> bool:
                # Apart from the streams' (Redis) so that they show while Redis is away,
                # when the outbox grows; and here, not at scrape time: a scrape never
                # waits on PostgreSQL.
                outbox = await relay.backlog()
                OUTBOX_WAITING.set(outbox.events)
                OUTBOX_OLDEST_AGE.set(outbox.oldest_age)
                rollups = await aggregator.backlog()
                ROLLUP_WAITING.set(rollups.clicks)
                ROLLUP_DELAY.set(rollups.oldest_age)
                return False

            async def relay_step() -> bool:
                return await relay.step() > 0

            async def rollup_step() -> bool:  # again at once while a backlog drains
                return (await aggregator.step()).behind

            log.info(
                "worker started",
                extra={"shorty.worker.consumer": name, "shorty.worker.geoip": geoip.enabled},
            )
            jobs = [
                *(_consume(consumer, stop, redis) for consumer in clicks),
                _consume(events, stop, redis),
                _forever(
                    "outbox relay",
                    relay_step,
                    stop,
                    idle=settings.outbox_poll_interval,
                    redis=redis,
                ),
                _forever("rollups", rollup_step, stop, idle=settings.rollup_interval),
                _forever("housekeeping", housekeeping, stop, idle=HOUSEKEEPING_SECONDS),
                _forever("stream metrics", observe, stop, idle=OBSERVE_SECONDS, redis=redis),
                _forever("backlog metrics", observe_backlogs, stop, idle=OBSERVE_SECONDS),
            ]
            await asyncio.gather(*jobs)
            for consumer in (*clicks, events):
                with contextlib.suppress(*_TRANSIENT):
                    await consumer.leave()
    finally:
        geoip.close()
    log.info("worker stopped")


async def _consume(consumer: Consumer, stop: asyncio.Event, redis: RedisGuard) -> None:
    async def step() -> bool:
        return await consumer.step(BLOCK_MS) > 0

    name = f"{consumer.stream} ({consumer.group})"
    await _forever(name, step, stop, setup=consumer.ensure_group, redis=redis)


async def _forever(
    name: str,
    step: Callable[[], Awaitable[bool]],
    stop: asyncio.Event,
    *,
    idle: float = 0.0,
    setup: Callable[[], Awaitable[None]] | None = None,
    redis: RedisGuard | None = None,
) -> None:
    """Run ``step`` until ``stop``: again at once when it did something, after ``idle``
    when it did not, after a backoff when PostgreSQL or Redis failed it. A step that
    uses Redis names the Redis breaker (``redis``): it is skipped while the breaker is
    open, and tells the breaker how Redis did."""
    failures = 0
    ready = setup is None
    while not stop.is_set():
        if redis is not None and not redis.usable():
            await _sleep_or_stop(stop, redis.retry_in() or OUTAGE_CAP)
            continue
        try:
            if not ready and setup is not None:
                await setup()  # again after a failure: Redis may have come back empty
                ready = True
            busy = await step()
        except _TRANSIENT as exc:
            if redis is not None:
                if isinstance(exc, RedisError):
                    redis.failed(exc)
                else:
                    redis.released()  # PostgreSQL failed the step: no news of Redis
            failures += 1
            ready = setup is None
            if failures == 1 or failures % 50 == 0:
                log.warning("%s paused: %s: %s", name, type(exc).__name__, exc)
            delay = full_jitter(failures, OUTAGE_BASE, OUTAGE_CAP, random.random)
            await _sleep_or_stop(stop, delay)
        except BaseException:
            if redis is not None:
                redis.released()
            raise
        else:
            if redis is not None:
                redis.succeeded()
            if failures:
                log.info("%s resumed", name)
            failures = 0
            if not busy and idle:
                await _sleep_or_stop(stop, idle)


async def observe_streams(client: Any, consumers: list[Consumer]) -> None:
    """Set the stream gauges: length, pending, lag (entries and seconds), DLQ size."""
    for consumer in consumers:
        stream, group = consumer.stream, consumer.group
        STREAM_LENGTH.labels(stream).set(await client.xlen(stream))
        for info in await client.xinfo_groups(stream):
            if info["name"].decode() != group:
                continue
            STREAM_PENDING.labels(stream, group).set(info["pending"])
            after = info["last-delivered-id"]
            lag = info.get("lag")  # Redis 7 counts it; before that, count (up to a cap)
            count = 1 if lag is not None else LAG_COUNT_CAP
            waiting = await client.xrange(stream, min=b"(" + after, count=count)
            STREAM_LAG.labels(stream, group).set(lag if lag is not None else len(waiting))
            age = time.time() - int(waiting[0][0].split(b"-")[0]) / 1000 if waiting else 0.0
            STREAM_LAG_SECONDS.labels(stream, group).set(max(age, 0.0))
    DLQ_LENGTH.set(await client.xlen(DLQ))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
