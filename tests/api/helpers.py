"""Helpers the API tests share: what a problem answer must look like, a link made
through the API, an answer checked against the served OpenAPI document, clicks stored
by the real ingester, letters in the dead-letter stream."""

import asyncio
import itertools
from datetime import datetime

import asyncpg
import jsonschema
import redis

from shorty.web.problems import PROBLEM_BASE
from shorty.worker.dlq import DLQ
from shorty.worker.ingest import Click, ClickIngester
from shorty.worker.rollup import Aggregator
from tests.helpers import bearer


def problem(response, status, slug):
    """Assert ``response`` is an RFC 9457 problem with ``status`` and type ``slug``;
    return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"]
    return body


def new_link(api, key, target="https://example.com", **fields):
    """Shorten ``target`` (and ``fields``) with ``key``: the new link (201 asserted)."""
    response = api.post("/api/v1/shorten", json={"target": target, **fields}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


def shorten(api, key, target="https://example.com/", **fields):
    """Shorten ``target`` (and ``fields``) with ``key``: the new link's code."""
    return new_link(api, key, target, **fields)["code"]


def conforms(doc, path, method, response):
    """Assert ``response`` matches what the OpenAPI ``doc`` declares for it."""
    documented = doc["paths"][path][method]["responses"][str(response.status_code)]
    media = response.headers["content-type"].split(";")[0]
    schema = documented["content"][media]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": doc["components"]})


CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

_click_ids = itertools.count(1)


def at(text):
    return datetime.fromisoformat(text)


def click(code, when, *, ref="", ua=CHROME, visitor=""):
    occurred_at = at(when) if isinstance(when, str) else when
    return Click(
        click_id=f"{next(_click_ids)}-0",
        code=code,
        occurred_at=occurred_at,
        referrer_host=ref,
        user_agent=ua,
        visitor_hash=visitor,
    )


def ingest(database_url, *clicks):
    async def go():
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            assert await ClickIngester(pool).store(list(clicks)) == len(clicks)
            assert await Aggregator(pool).drain() == len(clicks)
        finally:
            await pool.close()

    asyncio.run(go())


def letters(redis_url: str, count: int, stream: str = "shorty:clicks") -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [
            client.xadd(
                DLQ,
                {
                    "dlq:stream": stream,
                    "dlq:group": "ingest",
                    "dlq:id": f"1-{i}",
                    "dlq:error": f"boom {i}",
                    "dlq:deliveries": "5",
                    "dlq:at": "1796600000000",
                    "data": f"payload {i}",
                },
            ).decode()
            for i in range(count)
        ]
    finally:
        client.close()
