import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shorty.core.errors import AliasTaken, CodeSpaceExhausted
from shorty.store.links import LinkStore
from tests.helpers import query, user_with_key


def with_store(url, action, **store_args):
    async def go():
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        try:
            return await action(LinkStore(pool, **store_args))
        finally:
            await pool.close()

    return asyncio.run(go())


def scripted(*codes):
    """A code generator that hands out ``codes`` in order (to force collisions)."""
    pending = list(codes)
    return lambda length: pending.pop(0)


def test_create_get_delete_with_outbox_events(clean):
    owner, _ = user_with_key(clean.database_url, "ada@example.com")
    expires = datetime.now(UTC) + timedelta(days=1)

    async def scenario(store):
        created = await store.create("https://example.com", owner_id=owner, expires_at=expires)
        fetched = await store.get(created.code)
        deleted = await store.delete(created.code)
        gone = await store.get(created.code)
        return created, fetched, deleted, gone

    created, fetched, deleted, gone = with_store(clean.database_url, scenario)
    assert len(created.code) == 7
    assert created.owner_id == owner
    assert created.expires_at == expires
    assert fetched == created == deleted
    assert gone is None
    events = query(
        clean.database_url, "SELECT event_type, aggregate_id, payload FROM outbox ORDER BY id"
    )
    assert [(e["event_type"], e["aggregate_id"]) for e in events] == [
        ("link.created", created.code),
        ("link.deleted", created.code),
    ]


def test_taken_random_code_is_drawn_again(clean):
    async def scenario(store):
        first = await store.create("https://a.example", owner_id=None)
        second = await store.create("https://b.example", owner_id=None)
        return first, second

    first, second = with_store(
        clean.database_url, scenario, new_code=scripted("AAAAAAA", "AAAAAAA", "BBBBBBB")
    )
    assert (first.code, second.code) == ("AAAAAAA", "BBBBBBB")
    assert second.target == "https://b.example"


def test_retries_are_bounded(clean):
    async def scenario(store):
        await store.create("https://a.example", owner_id=None)
        await store.create("https://b.example", owner_id=None)

    with pytest.raises(CodeSpaceExhausted, match="5 attempts"):
        with_store(clean.database_url, scenario, new_code=lambda length: "SAMESAME")
    assert query(clean.database_url, "SELECT count(*) FROM urls")[0][0] == 1
    assert query(clean.database_url, "SELECT count(*) FROM outbox")[0][0] == 1


def test_taken_alias_fails_at_once(clean):
    async def scenario(store):
        await store.create("https://a.example", owner_id=None, alias="launch")
        await store.create("https://b.example", owner_id=None, alias="launch")

    with pytest.raises(AliasTaken, match="'launch' is already taken"):
        with_store(clean.database_url, scenario)


def test_owner_scoping(clean):
    ada, _ = user_with_key(clean.database_url, "ada@example.com")
    bob, _ = user_with_key(clean.database_url, "bob@example.com")

    async def scenario(store):
        link = await store.create("https://a.example", owner_id=ada, alias="adas")
        as_bob = await store.get(link.code, owner_id=bob)
        bob_delete = await store.delete(link.code, owner_id=bob)
        as_ada = await store.get(link.code, owner_id=ada)
        return as_bob, bob_delete, as_ada

    as_bob, bob_delete, as_ada = with_store(clean.database_url, scenario)
    assert as_bob is None
    assert bob_delete is None
    assert as_ada is not None
    assert as_ada.code == "adas"
