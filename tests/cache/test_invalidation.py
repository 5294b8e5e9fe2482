"""The invalidation listener: every invalidation reaches the callback, whatever fails."""

import asyncio
import logging

import redis.asyncio as aredis
from prometheus_client import REGISTRY

from shorty.cache.invalidation import listen
from shorty.cache.links import INVALIDATIONS

ERRORS = "shorty_invalidation_listener_errors_total"


def test_a_callback_that_raises_is_logged_and_the_next_invalidation_still_applied(clean, caplog):
    before = REGISTRY.get_sample_value(ERRORS) or 0
    heard: list[str] = []
    resets: list[int] = []

    async def scenario() -> None:
        client = aredis.Redis.from_url(clean.redis_url)
        subscribed, again, applied = asyncio.Event(), asyncio.Event(), asyncio.Event()

        def on_code(code: str) -> None:
            if code == "boom":
                raise RuntimeError("a bug in the callback")
            heard.append(code)
            applied.set()

        def on_reset() -> None:
            resets.append(len(heard))
            if len(resets) == 2:
                again.set()

        listener = asyncio.create_task(
            listen(client, on_code, on_reset, subscribed=subscribed, retry_seconds=0.05)
        )
        try:
            await asyncio.wait_for(subscribed.wait(), 5)
            await client.publish(INVALIDATIONS, "boom")
            # Subscribed again, and the LRU cleared for what may have been missed.
            await asyncio.wait_for(again.wait(), 5)
            await client.publish(INVALIDATIONS, "deleted")
            await asyncio.wait_for(applied.wait(), 5)
            assert not listener.done()
        finally:
            listener.cancel()
            await asyncio.wait({listener}, timeout=5)
            await client.aclose()

    with caplog.at_level(logging.ERROR, "shorty.cache.invalidation"):
        asyncio.run(scenario())
    assert heard == ["deleted"]
    assert resets == [0, 0]
    [line] = [r for r in caplog.records if r.name == "shorty.cache.invalidation"]
    assert line.levelno == logging.ERROR
    assert line.exc_info is not None
    assert isinstance(line.exc_info[1], RuntimeError)  # its stack is in the line
    assert (REGISTRY.get_sample_value(ERRORS) or 0) - before == 1
