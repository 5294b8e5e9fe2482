"""Cursors of the link list: an opaque ``next_cursor`` naming where a page ended."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from shorty.api.params import ID_MAX
from shorty.store.links import Position
from shorty.web.problems import Problem


def encode_cursor(after: Position) -> str:
    """The position after a page (its last link's creation time, or click count, and
    id), as text."""
    value, link_id = after
    shown = value.isoformat() if isinstance(value, datetime) else value
    raw = json.dumps([shown, link_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str = "created") -> Position:
    """The position a ``next_cursor`` of a page in ``sort``'s order names; 422 for
    anything that is not one (the client holds it, so it is untrusted input like any
    other), a cursor of the other order included."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, link_id = json.loads(raw)
        if type(link_id) is not int or not 1 <= link_id <= ID_MAX:
            raise ValueError("not a position")
        if sort == "clicks":
            if type(value) is not int or not 0 <= value <= 2**63 - 1:
                raise ValueError("not a click count")
            return value, link_id
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            raise ValueError("not a position")
        return when, link_id
    except (ValueError, TypeError, OverflowError) as exc:
        raise Problem(
            422, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
        ) from exc
