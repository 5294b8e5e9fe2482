"""Link use cases: shorten, change, declare by reference, block and delete.

Each takes the API's dependencies and the ``Principal`` acting, and does the
whole of it in one place: the domain's rules (``shorty.core``), the store write
with its outbox event (``shorty.store.links``), and then, once that is committed,
the cache invalidation (``_invalidate``), so a change reaches every tier. What a
principal may reach is ``Principal.owner_scope``: an admin any link, a user their
own.

Declarations by reference belong to the key's account, an admin's too: finding,
declaring and deleting by reference see only the caller's own links, so a
declarer never reads one link and writes another (admins reach any link by code).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shorty.bootstrap import ApiDeps
from shorty.cache.guard import REDIS_FAILURES
from shorty.core.accounts import Principal
from shorty.core.codes import validate_alias
from shorty.core.errors import AliasTaken, DomainError, LinkNotFound, ReferenceTaken
from shorty.core.links import (
    BlockReason,
    Link,
    Outcome,
    check_expiry,
    check_redeclaration,
    check_tags,
    differences,
)
from shorty.core.targets import TargetRules, normalize_target
from shorty.obs.audit import audit
from shorty.store.joined import after_commit
from shorty.store.links import LinkQuery, LinkStore, Position

log = logging.getLogger(__name__)

EXPORT_PAGE = 500  # links per query while a whole account is read out
DECLARE_ATTEMPTS = 3  # a link created or deleted meanwhile under the same reference


@dataclass(frozen=True, slots=True)
class Draft:
    """What a shorten asks for; a field left None takes its default."""

    target: str
    alias: str | None = None
    expires_at: datetime | None = None
    title: str | None = None
    tags: Sequence[str] | None = None
    max_clicks: int | None = None
    redirect_type: int | None = None
    forward_query: str | None = None

    def fields(self) -> dict[str, Any]:
        """The link's fields this draft sets (``store.links.UPDATABLE`` names)."""
        given = {
            "target": self.target,
            "expires_at": self.expires_at,
            "title": self.title,
            "tags": self.tags,
            "max_clicks": self.max_clicks,
            "redirect_type": self.redirect_type,
            "forward_query": self.forward_query,
        }
        return {name: value for name, value in given.items() if value is not None}


async def shorten(deps: ApiDeps, principal: Principal, draft: Draft) -> Link:
    """A new link of the caller's; InvalidTarget, InvalidAlias, InvalidExpiry,
    AliasTaken or QuotaExceeded if it cannot be."""
    link = await _create(deps, principal, draft)
    await _invalidate(deps, [link.code])
    return link


async def shorten_many(
    deps: ApiDeps, principal: Principal, drafts: Sequence[Draft]
) -> list[Link | DomainError]:
    """Each draft shortened on its own: its link, or the domain error refusing it."""
    results: list[Link | DomainError] = []
    for draft in drafts:
        try:
            results.append(await _create(deps, principal, draft))
        except DomainError as exc:
            results.append(exc)
    await _invalidate(deps, [link.code for link in results if isinstance(link, Link)])
    return results


async def _create(deps: ApiDeps, principal: Principal, draft: Draft) -> Link:
    settings = deps.settings
    return await deps.links.create(
        _checked(draft.fields(), settings.target_rules),
        owner_id=principal.user_id,
        alias=validate_alias(draft.alias) if draft.alias is not None else None,
        max_links=principal.link_quota(settings.max_links_per_user),
    )


async def find(deps: ApiDeps, principal: Principal, code: str) -> Link:
    """The link named ``code`` if the caller may reach it, else LinkNotFound."""
    link = await deps.links.get(code, owner_id=principal.owner_scope)
    if link is None:
        raise not_found(code)
    return link


async def page(
    deps: ApiDeps, principal: Principal, query: LinkQuery
) -> tuple[list[Link], Position | None]:
    """One page of the links the caller may reach, and the position after it."""
    return await deps.links.page(query, owner_id=principal.owner_scope)


async def every(deps: ApiDeps, principal: Principal) -> AsyncIterator[list[Link]]:
    """Every link the caller may reach, newest first, a page at a time."""
    query = LinkQuery(limit=EXPORT_PAGE)
    while True:
        links, after = await page(deps, principal, query)
        yield links
        if after is None:
            return
        query = LinkQuery(limit=EXPORT_PAGE, after=after)


async def update(deps: ApiDeps, principal: Principal, code: str, changes: dict[str, Any]) -> Link:
    """The link with ``changes`` (keys from ``store.links.UPDATABLE``) applied."""
    checked = _checked(changes, deps.settings.target_rules)
    link = await deps.links.update(code, checked, owner_id=principal.owner_scope)
    if link is None:
        raise not_found(code)
    await _invalidate(deps, [code])
    return link


async def delete(deps: ApiDeps, principal: Principal, code: str) -> Link:
    """Delete the link (an owner's blocked link is only let go of: see the store)."""
    link = await deps.links.delete(code, owner_id=principal.owner_scope)
    if link is None:
        raise not_found(code)
    await _invalidate(deps, [code])
    return link


async def block(
    deps: ApiDeps, principal: Principal, code: str, reason: BlockReason, note: str | None
) -> Link:
    """An admin's takedown (the caller's scope is checked by the handler)."""
    link = await deps.links.block(code, reason, note)
    if link is None:
        raise not_found(code)
    audit(
        "configuration",
        "link-block",
        user__id=principal.user_id,
        user__target__id=link.owner_id,
        shorty__code=code,
        shorty__reason=reason,
    )
    await _invalidate(deps, [code])
    return link


async def unblock(deps: ApiDeps, principal: Principal, code: str) -> Link:
    link = await deps.links.unblock(code)
    if link is None:
        raise not_found(code)
    audit(
        "configuration",
        "link-unblock",
        user__id=principal.user_id,
        user__target__id=link.owner_id,
        shorty__code=code,
    )
    await _invalidate(deps, [code])
    return link


async def declare(
    deps: ApiDeps,
    principal: Principal,
    ref: str,
    fields: dict[str, Any],
    alias: str | None = None,
) -> tuple[Link, Outcome]:
    """Make the link declared under ``ref`` hold ``fields``: created when there is
    none, else changed only where it differs. ``expires_at`` may have passed (a
    link declared expired)."""
    checked = _checked(fields, deps.settings.target_rules, past_ok=True)
    link, outcome = await put_by_ref(
        deps.links,
        ref,
        checked,
        owner_id=principal.user_id,
        alias=validate_alias(alias) if alias is not None else None,
        max_links=principal.link_quota(deps.settings.max_links_per_user),
    )
    if outcome is not Outcome.UNCHANGED:  # a repeated declaration leaves the caches be
        await _invalidate(deps, [link.code])
    return link, outcome


async def put_by_ref(
    links: LinkStore,
    ref: str,
    fields: dict[str, Any],
    *,
    owner_id: int | None,
    alias: str | None = None,
    max_links: int | None = None,
) -> tuple[Link, Outcome]:
    """``declare``'s write, on checked ``fields``: created when ``ref`` names no link
    (within ``max_links``), else changed only where it differs, so a repeated
    declaration writes nothing and sends no event.

    Its code never changes: an ``alias`` other than the link's code is
    CodeImmutable. A reference another user's link holds is ReferenceTaken; an
    alias another link holds is AliasTaken."""
    if fields.get("tags") is not None:
        fields = {**fields, "tags": tuple(fields["tags"])}
    for _ in range(DECLARE_ATTEMPTS):
        existing = await links.get_by_ref(ref)
        if existing is None:
            try:
                created = await links.declare(
                    ref, fields, owner_id=owner_id, alias=alias, max_links=max_links
                )
            except AliasTaken:
                if await links.get_by_ref(ref) is None:
                    raise
                continue  # the same reference with the same alias, at the same moment
            if created is None:
                continue  # the same reference, declared at the same moment
            return created, Outcome.CREATED
        check_redeclaration(existing, ref, owner_id, alias)
        changes = differences(existing, fields)
        if not changes:
            return existing, Outcome.UNCHANGED
        link = await links.update(existing.code, changes, ref=ref)
        if link is not None:
            return link, Outcome.CHANGED
    raise ReferenceTaken(f"The link declared as '{ref}' keeps changing; try again.")


async def find_declared(deps: ApiDeps, principal: Principal, ref: str) -> Link:
    link = await deps.links.get_by_ref(ref, owner_id=principal.user_id)
    if link is None:
        raise ref_not_found(ref)
    return link


async def delete_declared(deps: ApiDeps, principal: Principal, ref: str) -> Link:
    link = await deps.links.delete_by_ref(ref, owner_id=principal.user_id)
    if link is None:
        raise ref_not_found(ref)
    await _invalidate(deps, [link.code])
    return link


def not_found(code: str) -> LinkNotFound:
    return LinkNotFound(f"No link has the code '{code}'.")


def ref_not_found(ref: str) -> LinkNotFound:
    return LinkNotFound(f"No link is declared as '{ref}'.")


def _checked(
    fields: dict[str, Any], rules: TargetRules, *, past_ok: bool = False
) -> dict[str, Any]:
    """``fields`` of a link with Shorty's rules applied: the target normalized (and
    refused if blocked or Shorty's own), tags in their kept form, the expiry checked."""
    checked = dict(fields)
    if "target" in checked:
        checked["target"] = normalize_target(checked["target"], rules)
    if "tags" in checked:
        checked["tags"] = check_tags(checked["tags"])
    if checked.get("expires_at") is not None:
        checked["expires_at"] = check_expiry(
            checked["expires_at"], datetime.now(UTC), past_ok=past_ok
        )
    return checked


async def _invalidate(deps: ApiDeps, codes: list[str]) -> None:
    """Drop ``codes`` from Redis and every replica's LRU once the change is committed
    (an idempotent create commits after its answer is kept: ``store/joined.py``). A
    new code may be remembered as unknown (a negative entry), so creations are
    invalidated too, and not before PostgreSQL shows them. While Redis is skipped, or
    when it fails, the outbox has the change: the worker applies it once Redis is
    back."""
    await after_commit(lambda: _drop_from_caches(deps, codes))


async def _drop_from_caches(deps: ApiDeps, codes: list[str]) -> None:
    if not deps.redis_guard.usable():
        log.debug("invalidation of %d codes left to the outbox: Redis skipped", len(codes))
        return
    try:
        await deps.cache.invalidate_many(codes)
    except REDIS_FAILURES as exc:
        deps.redis_guard.failed(exc)
        log.warning("could not invalidate %d codes: %s", len(codes), type(exc).__name__)
    else:
        deps.redis_guard.succeeded()
