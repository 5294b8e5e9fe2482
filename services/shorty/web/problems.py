"""RFC 9457 problem details: every API error is ``application/problem+json``.

``type`` is a stable URI per kind of problem; clients switch on it, people read
``title`` and ``detail``. The catalogue is in docs/api.md.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

PROBLEM_BASE = "https://shorty.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class ProblemResponse(JSONResponse):
    media_type = MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        # ASCII with escapes: a problem may quote what a client sent, and no text a
        # client sends (a lone surrogate, say) may make the answer fail to encode.
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode()


class Problem(Exception):
    """Raise anywhere in a handler; the app turns it into a problem response."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def response(self, instance: str | None = None) -> ProblemResponse:
        return ProblemResponse(self.body(instance), status_code=self.status, headers=self.headers)
