"""Links declared by reference (the operator's ShortLinks): put, get, delete."""

import asyncio

import pytest

from shorty.core.errors import AliasTaken, CodeImmutable, ReferenceTaken
from shorty.core.links import Outcome
from shorty.usecases.links import put_by_ref
from tests.helpers import query, user_with_key
from tests.store.helpers import with_store

REF = "k8s:marketing/spring-sale/0a1b"
SPEC = {
    "target": "https://shop.example.com/sale",
    "redirect_type": 307,
    "max_clicks": 100,
    "tags": ("campaign", "spring"),
    "disabled": True,
    "forward_query": "append",
    "expires_at": None,
}


def events(url):
    rows = query(url, "SELECT event_type FROM outbox ORDER BY id")
    return [row["event_type"] for row in rows]


def test_first_put_creates_with_every_field_then_repeats_write_nothing(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")

    async def scenario(store):
        first = await put_by_ref(store, REF, SPEC, owner_id=owner, alias="spring-sale")
        again = await put_by_ref(store, REF, SPEC, owner_id=owner, alias="spring-sale")
        return first, again, await store.get_by_ref(REF)

    (created, was_new), (same, again_new), fetched = with_store(clean.database_url, scenario)
    assert (was_new, again_new) == (Outcome.CREATED, Outcome.UNCHANGED)
    assert created.code == "spring-sale"
    assert created.external_ref == REF
    assert (created.redirect_type, created.max_clicks, created.tags) == (307, 100, SPEC["tags"])
    assert (created.disabled, created.forward_query) == (True, "append")
    assert same == created == fetched
    assert events(clean.database_url) == ["link.created"]  # one event: created whole


def test_a_put_changes_only_what_differs_and_keeps_a_generated_code(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")

    async def scenario(store):
        created, _ = await put_by_ref(store, REF, {"target": "https://a.example/"}, owner_id=owner)
        changed, new = await put_by_ref(
            store, REF, {"target": "https://b.example/", "disabled": True}, owner_id=owner
        )
        return created, changed, new

    created, changed, new = with_store(clean.database_url, scenario)
    assert new is Outcome.CHANGED
    assert changed.code == created.code  # generated once, kept
    assert (changed.target, changed.disabled) == ("https://b.example/", True)
    assert events(clean.database_url) == ["link.created", "link.updated"]


def test_the_code_of_a_declared_link_never_changes(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")

    async def scenario(store):
        await put_by_ref(store, REF, SPEC, owner_id=owner, alias="first")
        await put_by_ref(store, REF, SPEC, owner_id=owner, alias="second")

    with pytest.raises(CodeImmutable, match="a code never changes"):
        with_store(clean.database_url, scenario)


def test_a_taken_alias_and_another_users_reference_are_refused(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")
    other, _ = user_with_key(clean.database_url, "other@example.com")

    async def taken(store):
        await store.create({"target": "https://e.com/"}, owner_id=other, alias="spring-sale")
        await put_by_ref(store, REF, SPEC, owner_id=owner, alias="spring-sale")

    with pytest.raises(AliasTaken):
        with_store(clean.database_url, taken)

    async def theirs(store):
        await put_by_ref(store, REF, SPEC, owner_id=other)
        await put_by_ref(store, REF, SPEC, owner_id=owner)

    with pytest.raises(ReferenceTaken):
        with_store(clean.database_url, theirs)


def test_concurrent_first_puts_make_one_link(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")

    async def scenario(store):
        return await asyncio.gather(
            *(put_by_ref(store, REF, SPEC, owner_id=owner) for _ in range(4))
        )

    results = with_store(clean.database_url, scenario)
    assert sum(outcome is Outcome.CREATED for _, outcome in results) == 1
    assert len({link.code for link, _ in results}) == 1
    assert query(clean.database_url, "SELECT count(*) FROM urls")[0][0] == 1


def test_concurrent_first_puts_with_one_alias_make_one_link_and_no_conflict(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")

    async def scenario(store):
        return await asyncio.gather(
            *(put_by_ref(store, REF, SPEC, owner_id=owner, alias="spring-sale") for _ in range(4))
        )

    for _ in range(5):  # the race is in the database: several rounds, each from scratch
        query(clean.database_url, "DELETE FROM urls")
        results = with_store(clean.database_url, scenario)
        assert sum(outcome is Outcome.CREATED for _, outcome in results) == 1
        assert {link.code for link, _ in results} == {"spring-sale"}
        assert query(clean.database_url, "SELECT count(*) FROM urls")[0][0] == 1


def test_an_update_by_reference_never_touches_a_link_that_took_its_code_meanwhile(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")

    async def scenario(store):
        link, _ = await put_by_ref(store, REF, SPEC, owner_id=owner, alias="spring-sale")
        await store.delete_by_ref(REF)
        await store.create(
            {"target": "https://someone.example/"}, owner_id=owner, alias="spring-sale"
        )
        # What put_by_ref does after reading the (now gone) declared link:
        return await store.update(link.code, {"disabled": True}, ref=REF)

    assert with_store(clean.database_url, scenario) is None
    assert query(clean.database_url, "SELECT disabled FROM urls")[0][0] is False


def test_delete_by_reference(clean):
    owner, _ = user_with_key(clean.database_url, "ops@example.com")
    other, _ = user_with_key(clean.database_url, "other@example.com")

    async def scenario(store):
        await put_by_ref(store, REF, SPEC, owner_id=owner)
        not_theirs = await store.delete_by_ref(REF, owner_id=other)
        deleted = await store.delete_by_ref(REF, owner_id=owner)
        return not_theirs, deleted, await store.delete_by_ref(REF), await store.get_by_ref(REF)

    not_theirs, deleted, again, gone = with_store(clean.database_url, scenario)
    assert not_theirs is None
    assert deleted.external_ref == REF
    assert (again, gone) == (None, None)
    assert events(clean.database_url) == ["link.created", "link.deleted"]
