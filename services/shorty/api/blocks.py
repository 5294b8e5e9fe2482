"""Admin takedowns: block a link (410, or 451 for a legal reason) and lift a block.

A block is not the owner's ``disabled`` switch: the owner sees it on the link
and cannot clear it, editing the link leaves it in place, and deleting the link
only takes it out of the owner's account (store/links.py ``delete``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import read_json
from shorty.api.links import invalidate, link_code, not_found
from shorty.api.schemas import BlockRequest, LinkDetail
from shorty.obs.audit import audit
from shorty.settings import Settings
from shorty.store.links import LinkStore


async def block(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    code = link_code(request)
    settings: Settings = request.app.state.settings
    body = await read_json(request, BlockRequest, settings.max_body_bytes)
    store: LinkStore = request.app.state.links
    link = await store.block(code, body.reason, body.note or None)
    if link is None:
        raise not_found(code)
    audit(
        "configuration",
        "link-block",
        user__id=principal.user_id,
        user__target__id=link.owner_id,
        shorty__code=code,
        shorty__reason=body.reason,
    )
    await invalidate(request, code)
    return JSONResponse(LinkDetail.of(link, settings.public_base).model_dump(mode="json"))


async def unblock(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    code = link_code(request)
    store: LinkStore = request.app.state.links
    link = await store.unblock(code)
    if link is None:
        raise not_found(code)
    audit(
        "configuration",
        "link-unblock",
        user__id=principal.user_id,
        user__target__id=link.owner_id,
        shorty__code=code,
    )
    await invalidate(request, code)
    settings: Settings = request.app.state.settings
    return JSONResponse(LinkDetail.of(link, settings.public_base).model_dump(mode="json"))
