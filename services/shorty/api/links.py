"""Link routes: shorten, read, delete."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import read_json
from shorty.api.schemas import LinkDetail, LinkOut, ShortenRequest
from shorty.cache.links import LinkCache
from shorty.core.codes import is_well_formed, validate_alias
from shorty.core.errors import LinkNotFound
from shorty.core.links import check_expiry
from shorty.core.targets import normalize_target
from shorty.settings import Settings
from shorty.store.links import LinkStore

log = logging.getLogger(__name__)


async def shorten(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    settings: Settings = request.app.state.settings
    body = await read_json(request, ShortenRequest, settings.max_body_bytes)
    target = normalize_target(body.target, settings.own_origins)
    alias = validate_alias(body.alias) if body.alias is not None else None
    expires_at = check_expiry(body.expires_at, datetime.now(UTC))
    store: LinkStore = request.app.state.links
    link = await store.create(
        target, owner_id=principal.user_id, alias=alias, expires_at=expires_at
    )
    # The code may be remembered as unknown (a negative cache entry): forget that.
    await _invalidate(request, link.code)
    out = LinkOut.of(link, settings.public_base)
    return JSONResponse(
        out.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/api/v1/urls/{link.code}"},
    )


def _code(request: Request) -> str:
    """The path's code, or LinkNotFound for anything that cannot be one (never queried)."""
    code: str = request.path_params["code"]
    if not is_well_formed(code):
        raise LinkNotFound("No link has this code.")
    return code


def _not_found(code: str) -> LinkNotFound:
    return LinkNotFound(f"No link has the code '{code}'.")


async def get_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    code = _code(request)
    store: LinkStore = request.app.state.links
    link = await store.get(code, owner_id=None if principal.is_admin else principal.user_id)
    if link is None:
        raise _not_found(code)
    detail = LinkDetail.of(link, request.app.state.settings.public_base)
    return JSONResponse(detail.model_dump(mode="json"))


async def delete_url(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    code = _code(request)
    store: LinkStore = request.app.state.links
    link = await store.delete(code, owner_id=None if principal.is_admin else principal.user_id)
    if link is None:
        raise _not_found(code)
    await _invalidate(request, code)
    return Response(status_code=204)


async def _invalidate(request: Request, code: str) -> None:
    cache: LinkCache = request.app.state.cache
    try:
        await cache.invalidate(code)
    except (RedisError, OSError) as exc:
        # Cached copies expire by themselves (SHORTY_CACHE_TTL, SHORTY_LRU_TTL).
        log.warning("could not invalidate %s: %s", code, type(exc).__name__)
