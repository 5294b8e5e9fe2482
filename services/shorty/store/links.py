"""The ``urls`` table: links created, read, changed, declared by reference and
deleted, each change with its outbox event in the same transaction. The rules
for what may change live in ``shorty.core.links`` and ``shorty.usecases.links``."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg

from shorty.core import codes
from shorty.core.errors import AliasTaken, CodeSpaceExhausted, InvalidRedirect, QuotaExceeded
from shorty.core.links import PERMANENT_WITH_LIMITS, Link
from shorty.obs import tracecontext
from shorty.resilience import retry
from shorty.store.joined import transaction

_COLUMNS = (
    "id, code, target, owner_id, created_at, updated_at, expires_at, click_count,"
    " redirect_type, disabled, max_clicks, title, tags, forward_query, external_ref,"
    " blocked_reason, blocked_note, blocked_at"
)


# What PATCH may change; the names double as column names.
UPDATABLE = frozenset(
    {
        "target",
        "title",
        "tags",
        "expires_at",
        "max_clicks",
        "redirect_type",
        "disabled",
        "forward_query",
    }
)

# A new link with every field at once (a field not given: its column's default); a
# link declared elsewhere carries its reference, any other none.
_INSERT = f"""
INSERT INTO urls (code, external_ref, owner_id, target, expires_at, max_clicks, redirect_type,
                  disabled, title, tags, forward_query)
VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, 302), coalesce($8, false), $9,
        coalesce($10, '{{}}'::text[]), coalesce($11, 'off'))
ON CONFLICT (code) DO NOTHING
RETURNING {_COLUMNS}
"""

_OUTBOX = """
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, traceparent)
VALUES ('link', $1, $2, $3::jsonb, $4)
"""


def _link(row: asyncpg.Record) -> Link:
    fields = dict(row)
    fields["tags"] = tuple(fields["tags"])
    return Link(**fields)


def _event(link: Link) -> dict[str, Any]:
    return {
        "code": link.code,
        "target": link.target,
        "owner_id": link.owner_id,
        "expires_at": link.expires_at.isoformat() if link.expires_at else None,
        "redirect_type": link.redirect_type,
        "disabled": link.disabled,
        "max_clicks": link.max_clicks,
        "forward_query": link.forward_query,
        "blocked_reason": link.blocked_reason,
    }


class LinkStore:
    """Repository over ``urls``; returns domain Links and raises domain errors."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        code_length: int = codes.DEFAULT_LENGTH,
        new_code: Callable[[int], str] = codes.generate_code,
    ) -> None:
        self._pool = pool
        self._code_length = code_length
        self._new_code = new_code

    async def create(
        self,
        fields: dict[str, Any],
        *,
        owner_id: int | None,
        alias: str | None = None,
        max_links: int | None = None,
    ) -> Link:
        """Insert a link holding ``fields`` (keys from UPDATABLE, ``target`` among
        them; checked already) under ``alias`` or under a fresh random code.

        A random code that is already taken is drawn again, at most
        ``codes.MAX_ATTEMPTS`` times; a taken alias is AliasTaken at once. An owner
        who already owns ``max_links`` links (None: no limit) is QuotaExceeded.
        """
        link = await self._insert(None, fields, owner_id, alias, max_links)
        assert link is not None  # only a reference can be declared twice at once
        return link

    async def get(self, code: str, *, owner_id: int | None = None) -> Link | None:
        """The link named ``code``; with ``owner_id``, only if that user owns it. A read:
        retried once on a fresh connection if its own broke (``resilience/retry.py``)."""
        row = await retry.idempotent(
            lambda: self._pool.fetchrow(
                f"SELECT {_COLUMNS} FROM urls WHERE code = $1"
                " AND ($2::bigint IS NULL OR owner_id = $2)",
                code,
                owner_id,
            )
        )
        return _link(row) if row else None

    async def delete(self, code: str, *, owner_id: int | None = None) -> Link | None:
        """Delete and return the link, or None if there was none (for this owner).

        An owner deleting a link an admin blocked only lets go of it: the link
        leaves their account but stays, blocked, under its code, so deleting it
        and declaring the code again cannot undo a takedown. An admin
        (``owner_id`` None) deletes it for good."""
        return await self._delete("code", code, owner_id)

    async def _delete(self, column: str, value: str, owner_id: int | None) -> Link | None:
        """Delete, or (an owner, a blocked link) let go of, the link whose ``column`` is
        ``value``. Decided under a lock of the row, in one transaction: a block that
        commits meanwhile is seen, and the link released, never deleted with it."""
        async with self._pool.acquire() as conn, conn.transaction():
            if owner_id is not None:
                blocked = await conn.fetchval(
                    f"SELECT blocked_reason IS NOT NULL FROM urls"
                    f" WHERE {column} = $1 AND owner_id = $2 FOR UPDATE",
                    value,
                    owner_id,
                )
                if blocked is None:
                    return None
                if blocked:
                    return await _apply(
                        conn,
                        "link.updated",
                        f"UPDATE urls SET owner_id = NULL, external_ref = NULL, updated_at = now()"
                        f" WHERE {column} = $1 AND owner_id = $2 RETURNING {_COLUMNS}",
                        value,
                        owner_id,
                    )
            return await _apply(
                conn,
                "link.deleted",
                f"DELETE FROM urls WHERE {column} = $1 AND ($2::bigint IS NULL OR owner_id = $2)"
                f" RETURNING {_COLUMNS}",
                value,
                owner_id,
            )

    async def block(self, code: str, reason: str, note: str | None) -> Link | None:
        """An admin's takedown: the link answers 410 (451 for ``legal``) until
        ``unblock``, whatever its owner changes. Blocking again updates the reason."""
        return await self._change(
            "link.updated",
            "UPDATE urls SET blocked_reason = $2, blocked_note = $3,"
            " blocked_at = coalesce(blocked_at, now()), updated_at = now()"
            f" WHERE code = $1 RETURNING {_COLUMNS}",
            code,
            reason,
            note,
        )

    async def unblock(self, code: str) -> Link | None:
        return await self._change(
            "link.updated",
            "UPDATE urls SET blocked_reason = NULL, blocked_note = NULL, blocked_at = NULL,"
            f" updated_at = now() WHERE code = $1 RETURNING {_COLUMNS}",
            code,
        )

    async def update(
        self,
        code: str,
        changes: dict[str, Any],
        *,
        owner_id: int | None = None,
        ref: str | None = None,
    ) -> Link | None:
        """Apply ``changes`` (keys from UPDATABLE) and record a ``link.updated`` event.
        With ``ref``, only if the link is still the one declared under it."""
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        names = sorted(changes)
        assignments = "".join(f"{name} = ${i}, " for i, name in enumerate(names, start=4))
        values = [list(changes[name]) if name == "tags" else changes[name] for name in names]
        return await self._change(
            "link.updated",
            f"UPDATE urls SET {assignments}updated_at = now()"
            " WHERE code = $1 AND ($2::bigint IS NULL OR owner_id = $2)"
            " AND ($3::text IS NULL OR external_ref = $3)"
            f" RETURNING {_COLUMNS}",
            code,
            owner_id,
            ref,
            *values,
        )

    async def get_by_ref(self, ref: str, *, owner_id: int | None = None) -> Link | None:
        """The link declared under ``ref``; with ``owner_id``, only if that user owns it."""
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM urls WHERE external_ref = $1"
            " AND ($2::bigint IS NULL OR owner_id = $2)",
            ref,
            owner_id,
        )
        return _link(row) if row else None

    async def delete_by_ref(self, ref: str, *, owner_id: int | None = None) -> Link | None:
        """Delete and return the link declared under ``ref`` (None if there was none);
        a blocked link is only let go of, as by ``delete``."""
        return await self._delete("external_ref", ref, owner_id)

    async def declare(
        self,
        ref: str,
        fields: dict[str, Any],
        *,
        owner_id: int | None,
        alias: str | None = None,
        max_links: int | None = None,
    ) -> Link | None:
        """Insert the link declared under ``ref``, holding ``fields`` (keys from
        UPDATABLE, ``target`` among them), under ``alias`` or a fresh code, within
        ``max_links`` as by ``create``. None if a link was declared under ``ref`` at
        the same moment (the reference is unique)."""
        try:
            return await self._insert(ref, fields, owner_id, alias, max_links)
        except asyncpg.UniqueViolationError:
            return None  # the same reference, declared at the same moment

    async def _insert(
        self,
        ref: str | None,
        fields: dict[str, Any],
        owner_id: int | None,
        alias: str | None,
        max_links: int | None,
    ) -> Link | None:
        unknown = set(fields) - UPDATABLE
        if unknown or "target" not in fields:
            raise ValueError(f"not insertable: {sorted(unknown) or 'no target'}")
        tags = fields.get("tags")
        quota = _quota(owner_id, max_links)
        return await self._under_a_code(
            alias,
            lambda code: self._change(
                "link.created",
                _INSERT,
                code,
                ref,
                owner_id,
                fields["target"],
                fields.get("expires_at"),
                fields.get("max_clicks"),
                fields.get("redirect_type"),
                fields.get("disabled"),
                fields.get("title"),
                list(tags) if tags is not None else None,
                fields.get("forward_query"),
                quota=quota,
            ),
        )

    async def _under_a_code(
        self, alias: str | None, insert: Callable[[str], Awaitable[Link | None]]
    ) -> Link:
        """``insert`` under ``alias``, or under a fresh random code: one that is taken
        is drawn again, at most ``codes.MAX_ATTEMPTS`` times; a taken alias is
        AliasTaken at once."""
        attempts = 1 if alias else codes.MAX_ATTEMPTS
        for _ in range(attempts):
            link = await insert(alias or self._new_code(self._code_length))
            if link is not None:
                return link
        if alias:
            raise AliasTaken(f"The alias '{alias}' is already taken.")
        raise CodeSpaceExhausted(
            f"No free code found in {attempts} attempts; raise SHORTY_CODE_LENGTH."
        )

    async def _change(
        self, event_type: str, sql: str, *args: Any, quota: tuple[int, int] | None = None
    ) -> Link | None:
        """Run ``sql`` (returning the link's row) and write its outbox event in the same
        transaction; None if no row came back. With ``quota`` (owner, most links), a
        place under it is claimed first, in the same transaction."""
        async with transaction(self._pool) as conn:  # an idempotent create's, if joined
            if quota is not None:
                await _claim_place(conn, *quota)
            return await _apply(conn, event_type, sql, *args)

    async def page(
        self, query: LinkQuery, *, owner_id: int | None = None
    ) -> tuple[list[Link], Position | None]:
        """One page in ``query.sort``'s order (newest, or most clicked, first; id breaks
        ties) and the position after it (None on the last page); a read, retried once
        on a fresh connection if its own broke."""
        after_value, after_id = query.after or (None, None)
        order = _ORDERS[query.sort]
        rows = await retry.idempotent(
            lambda: self._pool.fetch(
                f"SELECT {_COLUMNS} FROM urls"
                " WHERE ($1::bigint IS NULL OR owner_id = $1)"
                " AND ($2::text IS NULL OR $2 = ANY(tags))"
                " AND ($3::text IS NULL OR target ILIKE $3 OR title ILIKE $3)"
                " AND ($4::timestamptz IS NULL OR created_at >= $4)"
                " AND ($5::timestamptz IS NULL OR created_at < $5)"
                " AND ($6::text IS NULL"
                "      OR ($6 = 'expired' AND expires_at <= now())"
                "      OR ($6 = 'blocked' AND blocked_reason IS NOT NULL)"
                "      OR ($6 = 'disabled' AND disabled AND blocked_reason IS NULL)"
                "      OR ($6 = 'active' AND NOT disabled AND blocked_reason IS NULL"
                "          AND (expires_at IS NULL OR expires_at > now())))"
                f" AND ($7::{order.type} IS NULL OR ({order.column}, id) < ($7, $8::bigint))"
                f" ORDER BY {order.column} DESC, id DESC LIMIT $9",
                owner_id,
                query.tag,
                contains(query.search) if query.search else None,
                query.created_after,
                query.created_before,
                query.state,
                after_value,
                after_id,
                query.limit + 1,
            )
        )
        links = [_link(row) for row in rows[: query.limit]]
        if len(rows) <= query.limit or not links:
            return links, None
        last = links[-1]
        return links, (last.click_count if query.sort == "clicks" else last.created_at, last.id)


# A page's end: its last link's sort value (creation time or click count) and id.
Position = tuple[datetime | int, int]


@dataclass(frozen=True, slots=True)
class _Order:
    column: str
    type: str  # the column's PostgreSQL type, for the cursor's parameter


_ORDERS = {
    "created": _Order("created_at", "timestamptz"),
    "clicks": _Order("click_count", "bigint"),
}


def _quota(owner_id: int | None, max_links: int | None) -> tuple[int, int] | None:
    """What ``_change`` checks: nothing at all for the unlimited default."""
    return (owner_id, max_links) if owner_id is not None and max_links is not None else None


async def _claim_place(conn: asyncpg.Connection, owner_id: int, most: int) -> None:
    """QuotaExceeded if ``owner_id`` owns ``most`` links already. Their user row stays
    locked until the transaction ends, so two links created at once cannot both take
    the last place (FOR NO KEY UPDATE: exclusive among claims, yet no obstacle to the
    foreign-key checks of rows that merely point at the user). Links the owner let
    go of (owner NULL) do not count."""
    await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", owner_id)
    owned = await conn.fetchval("SELECT count(*) FROM urls WHERE owner_id = $1", owner_id)
    if owned >= most:
        raise QuotaExceeded(
            "links",
            most,
            f"This account may own at most {most} links; delete one first, or ask an admin"
            " for more.",
        )


async def _apply(conn: asyncpg.Connection, event_type: str, sql: str, *args: Any) -> Link | None:
    """Run ``sql`` (returning the link's row) and write its outbox event, in the
    caller's transaction; None if no row came back."""
    try:
        row = await conn.fetchrow(sql, *args)
    except asyncpg.CheckViolationError as exc:
        if exc.constraint_name != "urls_permanent_unlimited":
            raise
        raise InvalidRedirect(PERMANENT_WITH_LIMITS) from None
    if row is None:
        return None
    link = _link(row)
    await conn.execute(
        _OUTBOX, link.code, event_type, json.dumps(_event(link)), tracecontext.current()
    )
    return link


@dataclass(frozen=True, slots=True)
class LinkQuery:
    limit: int = 50
    tag: str | None = None
    search: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    state: str | None = None  # "active", "disabled", "expired" or "blocked"
    sort: Literal["created", "clicks"] = "created"
    after: Position | None = None  # of the same sort


def contains(text: str) -> str:
    """An ILIKE pattern matching ``text`` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
