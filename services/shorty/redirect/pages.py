"""What a person (HTML) or a program (problem+json) sees when a code does not redirect."""

from __future__ import annotations

from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from shorty.web.problems import Problem

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}}
</style>
</head><body><h1>{title}</h1><p>{detail}</p></body></html>
"""

_KINDS = {
    404: ("link-not-found", "Link not found", "There is no link at this address."),
    410: (
        "link-gone",
        "Link no longer available",
        "This link has expired, was disabled or reached its click limit.",
    ),
    429: ("rate-limited", "Too many requests", "Slow down, then try again."),
    451: (
        "unavailable-for-legal-reasons",
        "Unavailable for legal reasons",
        "This link was blocked by the operators of this service for legal reasons.",
    ),
    503: ("unavailable", "Temporarily unavailable", "Please try again in a few seconds."),
}
_BLOCKED = (
    "link-blocked",
    "Link blocked",
    "This link was blocked by the operators of this service.",
)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "json" in accept and "text/html" not in accept


def not_redirecting(
    request: Request,
    status: int,
    *,
    retry_after: int | None = None,
    blocked_by: str | None = None,
) -> Response:
    """The answer for a code that does not redirect; ``blocked_by`` (the service's
    public URL) marks a link an admin blocked (410, or 451 for a legal reason)."""
    slug, title, detail = _BLOCKED if blocked_by and status == 410 else _KINDS[status]
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if blocked_by and status == 451:
        headers["Link"] = f'<{blocked_by}>; rel="blocked-by"'
    if wants_json(request):
        return Problem(status, slug, title, detail, headers=headers).response(request.url.path)
    page = _PAGE.format(title=escape(title), detail=escape(detail))
    return HTMLResponse(page, status_code=status, headers=headers)
