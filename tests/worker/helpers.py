"""Helpers the worker tests share: links and clicks arranged in the real database and
stream, and a click consumer run against them."""

import asyncio

import asyncpg
import redis
import redis.asyncio as aredis

from shorty.redirect.clicks import STREAM
from shorty.worker.ingest import ClickIngester
from tests.helpers import query, scalar

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"


def add_link(url, code):
    query(url, "INSERT INTO urls (code, target) VALUES ($1, 'https://example.com')", code)


def add_clicks(redis_url, code, n, **extra):
    """``n`` clicks on ``code`` added to the clicks stream (Firefox, unless ``extra``
    says otherwise); their entry ids."""
    client = redis.Redis.from_url(redis_url)
    fields = {"code": code, "ts": "1767225600000", "ref": "ref.example", "ua": FIREFOX}
    fields |= {"vh": "0123abcd", **extra}
    ids = [client.xadd(STREAM, fields) for _ in range(n)]
    client.close()
    return ids


def with_consumer(stack, action, name="test-1", geoip=None, **options):
    """Run ``action(consumer, client, ingester)`` with a click consumer named ``name``
    (its group made) over the stack's PostgreSQL and Redis; its result."""

    async def go():
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        client = aredis.Redis.from_url(stack.redis_url)
        try:
            ingester = ClickIngester(pool, geoip)
            consumer = ingester.consumer(client, name, **options)
            await consumer.ensure_group()
            return await action(consumer, client, ingester)
        finally:
            await client.aclose()
            await pool.close()

    return asyncio.run(go())


def count_of(url, code):
    return scalar(url, "SELECT click_count FROM urls WHERE code = $1", code)
