"""W3C Trace Context: the ``traceparent`` of the request being served.

The API continues the trace of an incoming ``traceparent`` header (a new span
in the same trace) or starts a new one, and keeps it in a context variable, so
the outbox events a request writes carry the trace that caused them.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

CURRENT: ContextVar[str | None] = ContextVar("traceparent", default=None)
# version 00: 32 hex trace id, 16 hex parent id, 2 hex flags (lower case only).
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse(value: str) -> tuple[str, str] | None:
    """(trace id, flags) of a valid version-00 ``traceparent``; None otherwise."""
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    trace_id, parent_id, flags = match.groups()
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id, flags


def continue_from(incoming: str) -> str:
    """A ``traceparent`` for this request: a new span under ``incoming``'s trace, or
    a new sampled trace when ``incoming`` is empty or invalid."""
    parsed = parse(incoming) if incoming else None
    trace_id, flags = parsed or (os.urandom(16).hex(), "01")
    return f"00-{trace_id}-{os.urandom(8).hex()}-{flags}"


def current() -> str | None:
    return CURRENT.get()
