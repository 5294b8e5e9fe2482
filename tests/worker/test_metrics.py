"""The worker's stream gauges: length, pending, lag (entries and age), DLQ size."""

import asyncio
import time

import redis
import redis.asyncio as aredis
from prometheus_client import REGISTRY

from shorty.worker.main import observe_streams
from shorty.worker.streams import DLQ, Consumer


def gauge(name, **labels):
    return REGISTRY.get_sample_value(name, labels)


def test_stream_gauges_follow_the_groups(clean):
    plain = redis.Redis.from_url(clean.redis_url)
    plain.xgroup_create("m:stream", "g", id="0", mkstream=True)
    old = int(time.time() * 1000) - 30_000  # the oldest waiting entry is 30 s old
    for i in range(5):
        plain.xadd("m:stream", {"n": str(i)}, id=f"{old + i}-0")
    plain.xreadgroup("g", "c", {"m:stream": ">"}, count=2)  # 2 pending, 3 waiting
    plain.xadd(DLQ, {"dlq:error": "x"})

    async def observe():
        client = aredis.Redis.from_url(clean.redis_url)

        async def never(entries):
            raise AssertionError("not called")

        await observe_streams(client, [Consumer(client, "m:stream", "g", "c", never)])
        await client.aclose()

    asyncio.run(observe())
    assert gauge("shorty_stream_length", stream="m:stream") == 5
    assert gauge("shorty_stream_pending", stream="m:stream", group="g") == 2
    assert gauge("shorty_stream_lag", stream="m:stream", group="g") == 3
    age = gauge("shorty_stream_lag_seconds", stream="m:stream", group="g")
    assert 29 < age < 120
    assert gauge("shorty_dlq_length") == 1

    plain.xreadgroup("g", "c", {"m:stream": ">"})
    asyncio.run(observe())
    assert gauge("shorty_stream_lag", stream="m:stream", group="g") == 0
    assert gauge("shorty_stream_lag_seconds", stream="m:stream", group="g") == 0
    plain.close()
