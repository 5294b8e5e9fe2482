"""One trace from ``POST /api/v1/shorten`` through the outbox relay to the worker's
cache update: the real API, relay and cache updater on real PostgreSQL and Redis,
their spans recorded in memory."""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as aredis
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.cache.links import LinkCache
from shorty.obs import tracecontext
from shorty.worker.events import EVENTS, CacheUpdater, OutboxRelay
from shorty.worker.streams import Consumer, Entry, Failure
from tests.helpers import query, user_with_key
from tests.obs.traces import children, one, parent_of


def relay_then_update(stack) -> None:
    """What the worker does with one event: publish it, then apply it to the cache."""

    async def go() -> None:
        pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
        client = aredis.Redis.from_url(stack.redis_url, socket_timeout=2)
        try:
            assert await OutboxRelay(pool, client).step() == 1
            updater = CacheUpdater(LinkCache(client, 300)).consumer(client, "w1")
            await updater.ensure_group()
            assert await updater.step(block_ms=100) == 1
        finally:
            await client.aclose()
            await pool.close()

    asyncio.run(go())


def test_a_shortened_link_is_one_trace_from_the_request_to_the_cache_update(
    settings, clean, record
):
    spans = record()
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_app(settings)) as api:
        created = api.post(
            "/api/v1/shorten",
            json={"target": "https://example.com/a", "alias": "traced"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert created.status_code == 201
    relay_then_update(clean)
    finished = spans.get_finished_spans()

    request = one(finished, "POST /api/v1/shorten")
    assert request.kind is SpanKind.SERVER
    assert request.parent is None
    assert request.attributes["http.route"] == "/api/v1/shorten"
    assert request.attributes["http.status_code"] == 201
    # Everything recorded is this trace: the calls made outside any request or job
    # (start-up, the key made above, the relay's and consumer's polling) are not.
    assert {span.context.trace_id for span in finished} == {request.context.trace_id}

    # The request's database writes are inside it, and the outbox row carries it.
    writes = [s.attributes.get("db.statement", "") for s in children(finished, request)]
    assert any("INSERT INTO urls" in statement for statement in writes)
    assert any("INSERT INTO outbox" in statement for statement in writes)
    (row,) = query(clean.database_url, "SELECT traceparent FROM outbox")
    stored = tracecontext.span_context_of(row["traceparent"])
    assert stored is not None
    assert (stored.trace_id, stored.span_id) == (request.context.trace_id, request.context.span_id)

    # The relay's send: the event's creation context is its parent and its link;
    # the XADD to the stream and the outbox UPDATE inside it.
    send = one(finished, f"send {EVENTS}")
    assert send.kind is SpanKind.CLIENT
    assert parent_of(send) == request.context.span_id
    assert [link.context.span_id for link in send.links] == [request.context.span_id]
    assert send.attributes["messaging.destination.name"] == EVENTS
    assert send.attributes["messaging.operation.type"] == "send"
    inside_send = children(finished, send)
    assert any(s.name == "XADD" and s.attributes["db.system"] == "redis" for s in inside_send)
    assert any("UPDATE outbox" in s.attributes.get("db.statement", "") for s in inside_send)

    # The cache group's process span continues the same context; the cache update
    # (the Redis pipeline that drops the copy and tells the replicas) is inside it.
    process = one(finished, f"process {EVENTS}")
    assert process.kind is SpanKind.CONSUMER
    assert parent_of(process) == request.context.span_id
    assert [link.context.span_id for link in process.links] == [request.context.span_id]
    assert process.attributes["messaging.consumer.group.name"] == "cache"
    assert process.attributes["messaging.message.id"] == send.attributes["messaging.message.id"]
    updates = [s.attributes.get("db.statement", "") for s in children(finished, process)]
    assert any("DEL" in statement and "PUBLISH" in statement for statement in updates)


def test_a_batch_whose_entries_carry_no_trace_is_not_recorded(clean, record):
    """Clicks carry none: a trace per click batch, several a second, would be noise."""
    spans = record()  # the worker's ratio: every trace it starts
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    async def consume(stream: str, entries: list[dict[str, str]]) -> None:
        client = aredis.Redis.from_url(clean.redis_url, socket_timeout=2)

        async def handle(batch: list[Entry]) -> dict[bytes, Failure]:
            await client.get("anything")  # a call inside the batch's span
            return {}

        try:
            for fields in entries:
                await client.xadd(stream, fields)
            consumer = Consumer(client, stream, "test", "w1", handle)
            await consumer.ensure_group()
            assert await consumer.step(block_ms=100) == len(entries)
        finally:
            await client.aclose()

    asyncio.run(consume("test:untraced", [{"n": "1"}, {"n": "2"}, {"n": "3"}]))
    assert spans.get_finished_spans() == ()
    asyncio.run(consume("test:traced", [{"n": "1"}, {"n": "2", "traceparent": caller}]))
    process = one(spans.get_finished_spans(), "process test:traced")
    assert [format(link.context.span_id, "016x") for link in process.links] == [caller[36:52]]
