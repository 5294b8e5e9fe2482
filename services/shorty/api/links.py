"""Link routes: shorten, read, delete."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import segno
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from shorty.api import csvsafe
from shorty.api.auth import admit, authenticate, identify
from shorty.api.body import changes_of, parse_json, read_body, read_json, validate
from shorty.api.idempotency import idempotent
from shorty.api.params import ID_MAX
from shorty.api.problems import domain_problem
from shorty.api.schemas import (
    BulkRequest,
    DeclaredLink,
    DeclareRequest,
    LinkDetail,
    LinkOut,
    LinkPage,
    ListQuery,
    QrQuery,
    RefQuery,
    ShortenRequest,
    UpdateRequest,
)
from shorty.cache.links import LinkCache
from shorty.core.codes import is_well_formed, validate_alias
from shorty.core.errors import DomainError, LinkNotFound
from shorty.core.links import Link, check_expiry, check_tags
from shorty.core.targets import normalize_target
from shorty.settings import Settings
from shorty.store.keys import Principal
from shorty.store.links import LinkQuery, LinkStore, Outcome
from shorty.web.problems import Problem

log = logging.getLogger(__name__)


async def shorten(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    settings: Settings = request.app.state.settings
    data = parse_json(await read_body(request, settings.max_body_bytes))
    body = validate(data, ShortenRequest)

    async def produce() -> tuple[int, Any, dict[str, str]]:
        link = await _create(request, principal, body)
        # The code may be remembered as unknown (a negative cache entry): forget that.
        await invalidate(request, link.code)
        out = LinkOut.of(link, settings.public_base).model_dump(mode="json")
        return 201, out, {"Location": f"/api/v1/urls/{link.code}"}

    return await idempotent(request, principal, data, produce)


async def _create(request: Request, owner: Principal, body: ShortenRequest) -> Link:
    settings: Settings = request.app.state.settings
    target = normalize_target(body.target, settings.target_rules)
    alias = validate_alias(body.alias) if body.alias is not None else None
    expires_at = check_expiry(body.expires_at, datetime.now(UTC))
    store: LinkStore = request.app.state.links
    return await store.create(
        target,
        owner_id=owner.user_id,
        alias=alias,
        expires_at=expires_at,
        max_links=owner.link_quota(settings.max_links_per_user),
    )


BULK_MAX = 1000


async def bulk(request: Request) -> Response:
    """Up to BULK_MAX links in one request; each item succeeds or fails on its own.

    Each item costs one from the rate limits, as a single shorten would (issue #12
    item 10), so the body is read before the one check; only a known caller's."""
    principal = await identify(request)
    settings: Settings = request.app.state.settings
    try:
        data = parse_json(await read_body(request, settings.max_body_bytes * 64))
        items = validate(data, BulkRequest, nul_check=False).items  # each item checked below
    except Problem:
        await admit(request, principal, "urls:write")  # counted as one; a 429 or 403 first
        raise
    await admit(request, principal, "urls:write", cost=len(items))

    async def produce() -> tuple[int, Any, dict[str, str]]:
        results: list[dict[str, Any]] = []
        created: list[str] = []
        for index, item in enumerate(items):
            try:
                link = await _create(
                    request, principal, validate(item, ShortenRequest, f"items.{index}.")
                )
            except (Problem, DomainError) as exc:
                refused = exc if isinstance(exc, Problem) else domain_problem(exc)
                results.append(
                    {"index": index, "status": refused.status, "problem": refused.body()}
                )
            else:
                created.append(link.code)
                out = LinkOut.of(link, settings.public_base).model_dump(mode="json")
                results.append({"index": index, "status": 201, "link": out})
        await _invalidate_many(request, created)
        summary = {"created": len(created), "failed": len(items) - len(created)}
        return 200, {**summary, "results": results}, {}

    return await idempotent(request, principal, data, produce)


def link_code(request: Request) -> str:
    """The path's code, or LinkNotFound for anything that cannot be one (never queried)."""
    code: str = request.path_params["code"]
    if not is_well_formed(code):
        raise LinkNotFound("No link has this code.")
    return code


def not_found(code: str) -> LinkNotFound:
    return LinkNotFound(f"No link has the code '{code}'.")


async def get_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    code = link_code(request)
    store: LinkStore = request.app.state.links
    link = await store.get(code, owner_id=None if principal.is_admin else principal.user_id)
    if link is None:
        raise not_found(code)
    detail = LinkDetail.of(link, request.app.state.settings.public_base)
    return JSONResponse(detail.model_dump(mode="json"))


async def delete_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    code = link_code(request)
    store: LinkStore = request.app.state.links
    link = await store.delete(code, owner_id=None if principal.is_admin else principal.user_id)
    if link is None:
        raise not_found(code)
    await invalidate(request, code)
    return Response(status_code=204)


async def _invalidate_many(request: Request, codes: list[str]) -> None:
    cache: LinkCache = request.app.state.cache
    try:
        await cache.invalidate_many(codes)
    except (RedisError, OSError) as exc:
        log.warning("could not invalidate %d codes: %s", len(codes), type(exc).__name__)


async def invalidate(request: Request, code: str) -> None:
    cache: LinkCache = request.app.state.cache
    try:
        await cache.invalidate(code)
    except (RedisError, OSError) as exc:
        # The change is in the outbox: the worker applies it once Redis is back.
        log.warning("could not invalidate %s: %s", code, type(exc).__name__)


async def update_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    code = link_code(request)
    settings: Settings = request.app.state.settings
    body = await read_json(request, UpdateRequest, settings.max_body_bytes)
    changes = _checked(changes_of(body), settings)
    store: LinkStore = request.app.state.links
    link = await store.update(
        code, changes, owner_id=None if principal.is_admin else principal.user_id
    )
    if link is None:
        raise not_found(code)
    await invalidate(request, code)
    return JSONResponse(LinkDetail.of(link, settings.public_base).model_dump(mode="json"))


def _checked(
    fields: dict[str, Any], settings: Settings, *, past_ok: bool = False
) -> dict[str, Any]:
    """``fields`` of a link with Shorty's rules applied: the target normalized (and
    refused if blocked or Shorty's own), tags in their kept form, the expiry checked."""
    checked = dict(fields)
    if "target" in checked:
        checked["target"] = normalize_target(checked["target"], settings.target_rules)
    if "tags" in checked:
        checked["tags"] = check_tags(checked["tags"])
    if checked.get("expires_at") is not None:
        checked["expires_at"] = check_expiry(
            checked["expires_at"], datetime.now(UTC), past_ok=past_ok
        )
    return checked


def _ref(request: Request) -> str:
    return validate(dict(request.query_params), RefQuery).ref


def _ref_not_found(ref: str) -> LinkNotFound:
    return LinkNotFound(f"No link is declared as '{ref}'.")


async def put_declared(request: Request) -> Response:
    """Make the link declared under ?ref= hold the body: created (201) when there is
    none, else changed only where it differs (200). The operator's upsert.

    Declarations belong to the key's account, an admin's too: GET, PUT and DELETE of
    a reference see only the caller's own links, so a declarer never reads one link
    and writes another (admins reach any link through /urls/{code})."""
    principal = await authenticate(request, "urls:write")
    ref = _ref(request)
    settings: Settings = request.app.state.settings
    body = await read_json(request, DeclareRequest, settings.max_body_bytes)
    fields = _checked(body.model_dump(exclude={"alias"}), settings, past_ok=True)
    alias = validate_alias(body.alias) if body.alias is not None else None
    store: LinkStore = request.app.state.links
    link, outcome = await store.put_by_ref(
        ref,
        fields,
        owner_id=principal.user_id,
        alias=alias,
        max_links=principal.link_quota(settings.max_links_per_user),
    )
    if outcome is not Outcome.UNCHANGED:  # a repeated declaration leaves the caches be
        await invalidate(request, link.code)
    out = DeclaredLink.of(link, settings.public_base).model_dump(mode="json")
    return JSONResponse(out, status_code=201 if outcome is Outcome.CREATED else 200)


async def get_declared(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    ref = _ref(request)
    store: LinkStore = request.app.state.links
    link = await store.get_by_ref(ref, owner_id=principal.user_id)  # an admin's too: see PUT
    if link is None:
        raise _ref_not_found(ref)
    base = request.app.state.settings.public_base
    return JSONResponse(DeclaredLink.of(link, base).model_dump(mode="json"))


async def delete_declared(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    ref = _ref(request)
    store: LinkStore = request.app.state.links
    link = await store.delete_by_ref(ref, owner_id=principal.user_id)
    if link is None:
        raise _ref_not_found(ref)
    await invalidate(request, link.code)
    return Response(status_code=204)


async def list_urls(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    query = _list_query(request)
    store: LinkStore = request.app.state.links
    links, after = await store.page(
        query, owner_id=None if principal.is_admin else principal.user_id
    )
    base = request.app.state.settings.public_base
    page = LinkPage(
        items=[LinkDetail.of(link, base) for link in links],
        next_cursor=encode_cursor(after) if after else None,
    )
    return JSONResponse(page.model_dump(mode="json"))


async def export_csv(request: Request) -> Response:
    """Every link of the caller (all links for an admin) as CSV, streamed page by page."""
    principal = await authenticate(request, "urls:read")
    store: LinkStore = request.app.state.links
    base = request.app.state.settings.public_base
    owner = None if principal.is_admin else principal.user_id

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csvsafe.Writer(buffer)
        writer.writerow(EXPORT_COLUMNS)
        query = LinkQuery(limit=500)
        while True:
            links, after = await store.page(query, owner_id=owner)
            for link in links:
                writer.writerow(_export_row(link, base))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if after is None:
                return
            query = LinkQuery(limit=500, after=after)

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="shorty-links.csv"'},
    )


async def qr_code(request: Request) -> Response:
    """The short URL as a QR code: ?format=svg (default) or png, ?size=1..40 (module size)."""
    principal = await authenticate(request, "urls:read")
    code = link_code(request)
    query = validate(dict(request.query_params), QrQuery)
    store: LinkStore = request.app.state.links
    link = await store.get(code, owner_id=None if principal.is_admin else principal.user_id)
    if link is None:
        raise not_found(code)
    image = io.BytesIO()
    short_url = f"{request.app.state.settings.public_base}/{link.code}"
    segno.make(short_url, error="m").save(image, kind=query.format, scale=query.size, border=2)
    return Response(
        image.getvalue(),
        media_type=QR_TYPES[query.format],
        headers={"Cache-Control": "private, max-age=3600"},
    )


QR_TYPES = {"svg": "image/svg+xml", "png": "image/png"}
EXPORT_COLUMNS = (
    "code",
    "short_url",
    "target",
    "title",
    "tags",
    "created_at",
    "expires_at",
    "click_count",
    "redirect_type",
    "disabled",
    "blocked",
)


def _export_row(link: Link, base: str) -> list[object]:
    return [
        link.code,
        f"{base}/{link.code}",
        link.target,
        link.title or "",
        " ".join(link.tags),
        link.created_at.isoformat(),
        link.expires_at.isoformat() if link.expires_at else "",
        link.click_count,
        link.redirect_type,
        "yes" if link.disabled else "no",
        link.blocked_reason or "",
    ]


def encode_cursor(after: tuple[datetime, int]) -> str:
    raw = json.dumps([after[0].isoformat(), after[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a ``next_cursor`` names; 422 for anything that is not one (the
    client holds it, so it is untrusted input like any other)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, link_id = json.loads(raw)
        position = datetime.fromisoformat(when), link_id
        if type(link_id) is not int or not 1 <= link_id <= ID_MAX or position[0].tzinfo is None:
            raise ValueError("not a position")
        return position
    except (ValueError, TypeError, OverflowError) as exc:
        raise Problem(
            422, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
        ) from exc


def _list_query(request: Request) -> LinkQuery:
    params = validate(dict(request.query_params), ListQuery)
    return LinkQuery(
        limit=params.limit,
        tag=params.tag.lower() if params.tag else None,
        search=params.q or None,
        created_after=params.created_after,
        created_before=params.created_before,
        state=params.state,
        after=decode_cursor(params.cursor) if params.cursor else None,
    )
