"""``GET /urls/export.csv``: every link of the caller (all links for an admin) as
CSV, streamed page by page, each cell made safe to open in a spreadsheet."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from shorty.api import csvsafe
from shorty.api.auth import authenticate
from shorty.bootstrap import api_deps_of
from shorty.core.links import Link
from shorty.usecases import links

COLUMNS = (
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
    "max_clicks",
    "forward_query",
)


async def export_csv(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    deps = api_deps_of(request)
    base = deps.settings.public_base

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csvsafe.Writer(buffer)
        writer.writerow(COLUMNS)
        async for page in links.every(deps, principal):
            for link in page:
                writer.writerow(_row(link, base))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="shorty-links.csv"'},
    )


def _row(link: Link, base: str) -> list[object]:
    return [
        link.code,
        f"{base}/{link.code}",
        link.target,
        link.title or "",
        ", ".join(link.tags),  # a tag holds no comma, but may hold a space
        link.created_at.isoformat(),
        link.expires_at.isoformat() if link.expires_at else "",
        link.click_count,
        link.redirect_type,
        "yes" if link.disabled else "no",
        link.blocked_reason or "",
        link.max_clicks if link.max_clicks is not None else "",
        link.forward_query,
    ]
