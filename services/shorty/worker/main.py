"""The worker process: runs its jobs until SIGTERM/SIGINT, then stops between batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time

import asyncpg
from redis.exceptions import RedisError

from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.store.idempotency import IdempotencyStore
from shorty.worker.ingest import ClickIngester

log = logging.getLogger(__name__)
RETRY_SECONDS = 2.0
PRUNE_SECONDS = 600.0  # how often expired idempotency keys are deleted
BLOCK_MS = 1000  # longest wait for new clicks; also how soon a stop request is noticed
_TRANSIENT = (RedisError, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = f"{socket.gethostname()}-{os.getpid()}"
    async with open_resources(settings, redis_block_seconds=BLOCK_MS / 1000) as resources:
        ingester = ClickIngester(resources.pool, resources.redis, consumer)
        log.info("worker started", extra={"consumer": consumer})
        needs_group = True  # again after any failure: Redis may have restarted empty
        idempotency = IdempotencyStore(resources.pool)
        next_prune = time.monotonic()
        while not stop.is_set():
            try:
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_SECONDS
                    pruned = await idempotency.prune()
                    if pruned:
                        log.info("pruned %d expired idempotency keys", pruned)
                if needs_group:
                    await ingester.ensure_group()
                    needs_group = False
                counted = await ingester.step(BLOCK_MS)
                if counted:
                    log.info("ingested %d clicks", counted)
            except _TRANSIENT as exc:
                needs_group = True
                log.warning("click ingestion paused: %s", type(exc).__name__)
                await _sleep_or_stop(stop, RETRY_SECONDS)
        with contextlib.suppress(*_TRANSIENT):
            await ingester.leave()
    log.info("worker stopped")


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
