"""``GET /urls/{code}/qr``: a link's short URL as a QR code."""

from __future__ import annotations

import io

import segno
from starlette.requests import Request
from starlette.responses import Response

from shorty.api.auth import authenticate
from shorty.api.body import validate
from shorty.api.links import link_code
from shorty.api.schemas import QrQuery
from shorty.bootstrap import api_deps_of
from shorty.usecases import links

MEDIA_TYPES = {"svg": "image/svg+xml", "png": "image/png"}


async def qr_code(request: Request) -> Response:
    """?format=svg (default) or png, ?size=1..40 (module size)."""
    principal = await authenticate(request, "urls:read")
    code = link_code(request)
    query = validate(dict(request.query_params), QrQuery)
    deps = api_deps_of(request)
    link = await links.find(deps, principal, code)
    image = io.BytesIO()
    short_url = f"{deps.settings.public_base}/{link.code}"
    segno.make(short_url, error="m").save(image, kind=query.format, scale=query.size, border=2)
    return Response(
        image.getvalue(),
        media_type=MEDIA_TYPES[query.format],
        headers={"Cache-Control": "private, max-age=3600"},
    )
