import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shorty.core.errors import AliasTaken, CodeSpaceExhausted, QuotaExceeded
from shorty.store.links import LinkStore
from shorty.usecases.links import put_by_ref
from tests.helpers import query, scalar, user_with_key, waiting_on_a_lock
from tests.store.helpers import with_store


def scripted(*codes):
    """A code generator that hands out ``codes`` in order (to force collisions)."""
    pending = list(codes)
    return lambda length: pending.pop(0)


def test_create_get_delete_with_outbox_events(clean):
    owner, _ = user_with_key(clean.database_url, "ada@example.com")
    expires = datetime.now(UTC) + timedelta(days=1)

    async def scenario(store):
        created = await store.create(
            {"target": "https://example.com", "expires_at": expires}, owner_id=owner
        )
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
        first = await store.create({"target": "https://a.example"}, owner_id=None)
        second = await store.create({"target": "https://b.example"}, owner_id=None)
        return first, second

    first, second = with_store(
        clean.database_url, scenario, new_code=scripted("AAAAAAA", "AAAAAAA", "BBBBBBB")
    )
    assert (first.code, second.code) == ("AAAAAAA", "BBBBBBB")
    assert second.target == "https://b.example"


def test_retries_are_bounded(clean):
    async def scenario(store):
        await store.create({"target": "https://a.example"}, owner_id=None)
        await store.create({"target": "https://b.example"}, owner_id=None)

    with pytest.raises(CodeSpaceExhausted, match="5 attempts"):
        with_store(clean.database_url, scenario, new_code=lambda length: "SAMESAME")
    assert query(clean.database_url, "SELECT count(*) FROM urls")[0][0] == 1
    assert query(clean.database_url, "SELECT count(*) FROM outbox")[0][0] == 1


def test_taken_alias_fails_at_once(clean):
    async def scenario(store):
        await store.create({"target": "https://a.example"}, owner_id=None, alias="launch")
        await store.create({"target": "https://b.example"}, owner_id=None, alias="launch")

    with pytest.raises(AliasTaken, match="'launch' is already taken"):
        with_store(clean.database_url, scenario)


def test_owner_scoping(clean):
    ada, _ = user_with_key(clean.database_url, "ada@example.com")
    bob, _ = user_with_key(clean.database_url, "bob@example.com")

    async def scenario(store):
        link = await store.create({"target": "https://a.example"}, owner_id=ada, alias="adas")
        as_bob = await store.get(link.code, owner_id=bob)
        bob_delete = await store.delete(link.code, owner_id=bob)
        as_ada = await store.get(link.code, owner_id=ada)
        return as_bob, bob_delete, as_ada

    as_bob, bob_delete, as_ada = with_store(clean.database_url, scenario)
    assert as_bob is None
    assert bob_delete is None
    assert as_ada is not None
    assert as_ada.code == "adas"


def with_pool(url, scenario, size=10):
    async def go():
        pool = await asyncpg.create_pool(url, min_size=1, max_size=size)
        try:
            return await scenario(LinkStore(pool))
        finally:
            await pool.close()

    return asyncio.run(go())


def test_concurrent_creates_never_pass_the_link_quota(clean):
    """Issue #12 item 10: twenty creates at once (shortened and declared) against a
    quota of 5 make exactly 5 links; the owner's row serializes the last places."""
    owner, _ = user_with_key(clean.database_url, "ada@example.com")

    async def scenario(store):
        async def one(i):
            target = f"https://example.com/{i}"
            try:
                if i % 2:
                    return await store.create({"target": target}, owner_id=owner, max_links=5)
                fields = {"target": target}
                return (await put_by_ref(store, f"ref-{i}", fields, owner_id=owner, max_links=5))[0]
            except QuotaExceeded as exc:
                return exc

        return await asyncio.gather(*(one(i) for i in range(20)))

    results = with_pool(clean.database_url, scenario)
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(refused) == 15
    assert {(r.slug, r.quota, r.limit) for r in refused} == {("quota-exceeded", "links", 5)}
    assert scalar(clean.database_url, "SELECT count(*) FROM urls WHERE owner_id = $1", owner) == 5


def test_the_link_quota_counts_only_links_the_owner_holds(clean):
    ada, _ = user_with_key(clean.database_url, "ada@example.com")
    bob, _ = user_with_key(clean.database_url, "bob@example.com")

    async def scenario(store):
        first = await store.create({"target": "https://example.com/1"}, owner_id=ada, max_links=2)
        await store.create({"target": "https://example.com/b"}, owner_id=bob)  # another owner's
        await store.create({"target": "https://example.com/2"}, owner_id=ada, max_links=2)
        with pytest.raises(QuotaExceeded, match="at most 2 links"):
            await store.create({"target": "https://example.com/3"}, owner_id=ada, max_links=2)
        with pytest.raises(QuotaExceeded):
            await put_by_ref(store, "r", {"target": "https://e.com/"}, owner_id=ada, max_links=2)
        # A blocked link its owner deletes is only let go of: it stays, owned by no one.
        await store.block(first.code, "abuse", None)
        await store.delete(first.code, owner_id=ada)
        assert (await store.get(first.code)).owner_id is None
        third = await store.create({"target": "https://example.com/3"}, owner_id=ada, max_links=2)
        unlimited = await store.create({"target": "https://example.com/4"}, owner_id=ada)
        with pytest.raises(QuotaExceeded, match="at most 0 links"):
            await store.create({"target": "https://example.com/5"}, owner_id=bob, max_links=0)
        return third, unlimited

    third, unlimited = with_pool(clean.database_url, scenario)
    assert third.owner_id == unlimited.owner_id == ada


def test_only_a_link_quota_locks_the_owner(clean):
    """Without a quota (the default) a create takes no lock on its owner's row; with
    one it waits for it: here, for a transaction holding it as an admin's PATCH would."""
    owner, _ = user_with_key(clean.database_url, "ada@example.com")

    async def scenario(store):
        holder = await asyncpg.connect(clean.database_url)
        held = holder.transaction()
        await held.start()
        await holder.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", owner)
        try:
            free = await asyncio.wait_for(
                store.create({"target": "https://e.com/1"}, owner_id=owner), 10
            )
            capped = asyncio.create_task(
                store.create({"target": "https://e.com/2"}, owner_id=owner, max_links=5)
            )
            deadline = asyncio.get_running_loop().time() + 10
            while not await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ):
                assert asyncio.get_running_loop().time() < deadline, "the create never waited"
                await asyncio.sleep(0.02)
            assert not capped.done()
        finally:
            await held.rollback()
            await holder.close()
        return free, await asyncio.wait_for(capped, 10)

    free, capped = with_pool(clean.database_url, scenario)
    assert free.owner_id == capped.owner_id == owner


def test_a_block_committed_during_an_owners_delete_keeps_the_link_blocked(clean):
    """The owner's delete decides under the row's lock: a block that commits while it
    waits is seen, and the link let go of, not deleted with its block (a review
    raced DELETE and re-create against an admin's block and won on the code before)."""
    owner, _ = user_with_key(clean.database_url, "ada@example.com")

    async def scenario():
        pool = await asyncpg.create_pool(clean.database_url, min_size=1, max_size=4)
        try:
            store = LinkStore(pool)
            await store.create({"target": "https://example.com/"}, owner_id=owner, alias="taken")
            async with pool.acquire() as admin:
                block = admin.transaction()
                await block.start()
                await admin.execute(
                    "UPDATE urls SET blocked_reason = 'abuse', blocked_at = now()"
                    " WHERE code = 'taken'"
                )
                deleting = asyncio.create_task(store.delete("taken", owner_id=owner))
                await waiting_on_a_lock(pool)
                await block.commit()
            return await deleting
        finally:
            await pool.close()

    answered = asyncio.run(scenario())
    assert answered is not None  # the owner is told it is gone from their account
    row = query(clean.database_url, "SELECT owner_id, blocked_reason FROM urls")
    assert [tuple(r) for r in row] == [(None, "abuse")]
