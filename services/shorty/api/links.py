"""Link routes: shorten (one or in bulk), list, read, change and delete by code.

Each handler parses the request, calls a use case (``shorty.usecases.links``)
and renders the link it returns. Declarations by reference are in ``refs.py``,
the CSV export in ``export.py``, QR codes in ``qr.py``, takedowns in ``blocks.py``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import admit, authenticate, identify
from shorty.api.body import changes_of, parse_json, read_body, read_json, validate
from shorty.api.cursors import decode_cursor, encode_cursor
from shorty.api.idempotency import idempotent
from shorty.api.problems import domain_problem
from shorty.api.schemas import (
    BulkRequest,
    LinkDetail,
    LinkOut,
    LinkPage,
    ListQuery,
    ShortenRequest,
    UpdateRequest,
)
from shorty.bootstrap import api_deps_of
from shorty.core.codes import is_well_formed
from shorty.core.errors import DomainError, LinkNotFound
from shorty.core.links import Link
from shorty.store.links import LinkQuery
from shorty.usecases import links
from shorty.usecases.links import Draft
from shorty.web.problems import Problem


async def shorten(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    deps = api_deps_of(request)
    data = parse_json(await read_body(request, deps.settings.max_body_bytes))
    draft = _draft(validate(data, ShortenRequest))

    async def produce() -> tuple[int, Any, dict[str, str]]:
        link = await links.shorten(deps, principal, draft)
        out = LinkDetail.of(link, deps.settings.public_base).model_dump(mode="json")
        return 201, out, {"Location": f"/api/v1/urls/{link.code}"}

    return await idempotent(request, principal, data, produce)


async def bulk(request: Request) -> Response:
    """Up to ``schemas.BULK_MAX`` links in one request; each item succeeds or fails on its own.

    Each item costs one from the rate limits, as a single shorten would (issue #12
    item 10), so the body is read before the one check; only a known caller's."""
    principal = await identify(request)
    deps = api_deps_of(request)
    try:
        data = parse_json(await read_body(request, deps.settings.max_body_bytes * 64))
        items = validate(data, BulkRequest, nul_check=False).items  # each item checked below
    except Problem:
        await admit(request, principal, "urls:write")  # counted as one; a 429 or 403 first
        raise
    await admit(request, principal, "urls:write", cost=len(items))
    base = deps.settings.public_base

    async def produce() -> tuple[int, Any, dict[str, str]]:
        outcomes: dict[int, Link | DomainError | Problem] = {}
        drafts: dict[int, Draft] = {}
        for index, item in enumerate(items):
            try:
                drafts[index] = _draft(validate(item, ShortenRequest, f"items.{index}."))
            except Problem as exc:
                outcomes[index] = exc
        made = await links.shorten_many(deps, principal, list(drafts.values()))
        outcomes.update(zip(drafts, made, strict=True))
        results = [_bulk_result(index, outcomes[index], base) for index in range(len(items))]
        created = sum(result["status"] == 201 for result in results)
        summary = {"created": created, "failed": len(items) - created}
        return 200, {**summary, "results": results}, {}

    return await idempotent(request, principal, data, produce)


def _bulk_result(index: int, outcome: Link | DomainError | Problem, base: str) -> dict[str, Any]:
    if isinstance(outcome, Link):
        return {
            "index": index,
            "status": 201,
            "link": LinkOut.of(outcome, base).model_dump(mode="json"),
        }
    problem = outcome if isinstance(outcome, Problem) else domain_problem(outcome)
    return {"index": index, "status": problem.status, "problem": problem.body()}


def _draft(body: ShortenRequest) -> Draft:
    return Draft(
        body.target,
        alias=body.alias,
        expires_at=body.expires_at,
        title=body.title,
        tags=body.tags,
        max_clicks=body.max_clicks,
        redirect_type=body.redirect_type,
        forward_query=body.forward_query,
    )


def link_code(request: Request) -> str:
    """The path's code, or LinkNotFound for anything that cannot be one (never queried)."""
    code: str = request.path_params["code"]
    if not is_well_formed(code):
        raise LinkNotFound("No link has this code.")
    return code


async def get_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    deps = api_deps_of(request)
    link = await links.find(deps, principal, link_code(request))
    return JSONResponse(LinkDetail.of(link, deps.settings.public_base).model_dump(mode="json"))


async def update_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    code = link_code(request)
    deps = api_deps_of(request)
    body = await read_json(request, UpdateRequest, deps.settings.max_body_bytes)
    link = await links.update(deps, principal, code, changes_of(body))
    return JSONResponse(LinkDetail.of(link, deps.settings.public_base).model_dump(mode="json"))


async def delete_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    await links.delete(api_deps_of(request), principal, link_code(request))
    return Response(status_code=204)


async def list_urls(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    query = _list_query(request)
    deps = api_deps_of(request)
    found, after = await links.page(deps, principal, query)
    page = LinkPage(
        items=[LinkDetail.of(link, deps.settings.public_base) for link in found],
        next_cursor=encode_cursor(after) if after else None,
    )
    return JSONResponse(page.model_dump(mode="json"))


def _list_query(request: Request) -> LinkQuery:
    params = validate(dict(request.query_params), ListQuery)
    return LinkQuery(
        limit=params.limit,
        tag=params.tag.lower() if params.tag else None,
        search=params.q or None,
        created_after=params.created_after,
        created_before=params.created_before,
        state=params.state,
        sort=params.sort,
        after=decode_cursor(params.cursor, params.sort) if params.cursor else None,
    )
