"""Admin takedowns: block a link (410, or 451 for a legal reason) and lift a block.

A block is not the owner's ``disabled`` switch: the owner sees it on the link
and cannot clear it, editing the link leaves it in place, and deleting the link
only takes it out of the owner's account (store/links.py ``delete``).
The audit record and the cache invalidation are the use case's
(``shorty.usecases.links.block``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import read_json
from shorty.api.links import link_code
from shorty.api.schemas import BlockRequest, LinkDetail
from shorty.bootstrap import api_deps_of
from shorty.usecases import links


async def block(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    code = link_code(request)
    deps = api_deps_of(request)
    body = await read_json(request, BlockRequest, deps.settings.max_body_bytes)
    link = await links.block(deps, principal, code, body.reason, body.note or None)
    return JSONResponse(LinkDetail.of(link, deps.settings.public_base).model_dump(mode="json"))


async def unblock(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    code = link_code(request)
    deps = api_deps_of(request)
    link = await links.unblock(deps, principal, code)
    return JSONResponse(LinkDetail.of(link, deps.settings.public_base).model_dump(mode="json"))
