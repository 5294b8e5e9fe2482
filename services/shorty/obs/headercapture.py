"""Which HTTP headers a span may carry: those OpenTelemetry's
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*`` variables name (none by default), and
never a credential's value, whatever they name (``.*`` takes every header).

``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` adds names whose values
are ``[REDACTED]``; it cannot take ``CREDENTIALS`` away (set alone, it would: the
instrumentation reads it instead of any list it is given)."""

from __future__ import annotations

from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    get_custom_headers,
)

# Header names (regular expressions, matched anywhere in the name, in any case).
CREDENTIALS = ("authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key")


def redacted() -> list[str]:
    """The header names whose values a span never carries."""
    return [
        *CREDENTIALS,
        *get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
    ]
