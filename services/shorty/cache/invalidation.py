"""Listening for link invalidations (Redis pub/sub) on behalf of a redirect replica.

Messages missed while the subscription was down cannot be replayed, so every
(re)subscription first calls ``on_reset`` to forget all cached links. While
Redis is away the cached links keep being served, each for at most its TTL.
Any other failure (a bug in a callback, a message not as expected) is logged with
its stack, counted, and met the same way: the listener subscribes again, so the
replica never stops hearing invalidations silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aredis
from redis.exceptions import RedisError

from shorty.cache.links import INVALIDATIONS
from shorty.obs.metrics import INVALIDATION_LISTENER_ERRORS

log = logging.getLogger(__name__)


async def listen(
    client: aredis.Redis,
    on_code: Callable[[str], None],
    on_reset: Callable[[], None],
    *,
    subscribed: asyncio.Event | None = None,
    retry_seconds: float = 1.0,
) -> None:
    """Run until cancelled: call ``on_code`` for each invalidated code.
    ``subscribed`` is set once the first subscription stands."""
    while True:
        try:
            async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(INVALIDATIONS)
                on_reset()
                if subscribed is not None:
                    subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        on_code(message["data"].decode())
        except (RedisError, OSError) as exc:
            # Cached links keep being served meanwhile (they expire after SHORTY_LRU_TTL);
            # the next subscription starts with on_reset() for what was missed.
            log.warning("invalidation subscription lost: %s; retrying", type(exc).__name__)
        except Exception:
            # Ending here would leave this replica deaf to invalidations, serving deleted
            # and disabled links from its LRU until their TTL: subscribe again instead
            # (on_reset() then forgets what this message and the pause may have hidden).
            INVALIDATION_LISTENER_ERRORS.inc()
            log.exception("invalidation listener failed; subscribing again")
        await asyncio.sleep(retry_seconds)
