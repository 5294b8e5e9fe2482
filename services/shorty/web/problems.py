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
# Every problem type either service answers with (docs/api.md lists the API's; the
# redirect's are in redirect/pages.py). The metric shorty_http_problems_total counts
# by these and "other", so that its labels stay bounded; a test keeps them complete.
PROBLEM_TYPES = frozenset(
    {
        # the API (docs/api.md, "Problems")
        "alias-taken",
        "body-too-large",
        "bootstrap-refused",
        "bulk-too-large",
        "chaos-disabled",
        "code-immutable",
        "code-space-exhausted",
        "deadline-exceeded",
        "domain-error",
        "experiment-not-found",
        "experiment-running",
        "idempotency-key-in-progress",
        "idempotency-key-reused",
        "insufficient-scope",
        "internal-error",
        "invalid-account",
        "invalid-alias",
        "invalid-api-key",
        "invalid-credentials",
        "invalid-cursor",
        "invalid-expiry",
        "invalid-limit",
        "invalid-redirect-type",
        "invalid-refresh-token",
        "invalid-tag",
        "invalid-target",
        "invalid-token",
        "key-not-found",
        "letter-not-found",
        "link-not-found",
        "malformed-json",
        "method-not-allowed",
        "not-found",
        "overloaded",
        "quota-exceeded",
        "range-too-large",
        "rate-limited",
        "reference-taken",
        "refresh-token-reused",
        "registration-closed",
        "service-unavailable",
        "unauthenticated",
        "unsupported-media-type",
        "user-not-found",
        "validation-failed",
        # the redirect service, to a client asking for JSON (redirect/pages.py)
        "link-blocked",
        "link-gone",
        "unavailable",
        "unavailable-for-legal-reasons",
    }
)


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
