"""Cursors of the link list: an opaque ``next_cursor`` naming where a page ended."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from shorty.api.params import ID_MAX
from shorty.web.problems import Problem


def encode_cursor(after: tuple[datetime, int]) -> str:
    """The position after a page (its last link's creation time and id), as text."""
    raw = json.dumps([after[0].isoformat(), after[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    """The position a ``next_cursor`` names; 422 for anything that is not one (the
    client holds it, so it is untrusted input like any other)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, link_id = json.loads(raw)
        position = datetime.fromisoformat(when), link_id
        if type(link_id) is not int or not 1 <= link_id <= ID_MAX or position[0].tzinfo is None:
            raise ValueError("not a position")
        return position
    except (ValueError, TypeError, OverflowError) as exc:
        raise Problem(
            422, "invalid-cursor", "Invalid cursor", "Use the next_cursor of a previous page."
        ) from exc
