"""Security events, one log line each (logger ``shorty.audit``), for whoever must later
answer "who did this, and when": logins, registrations, keys minted and revoked,
roles and limits changed, links blocked.

A line carries ECS fields (``event.category``, ``event.action``,
``event.outcome``, ``user.id``, ``user.target.id``...) and never a secret: no
password, no key, no token; an email only as the login's account hash (the
same one the login rate limit keys on), so a log reader learns no address.
"""

from __future__ import annotations

import logging
from typing import Literal

log = logging.getLogger("shorty.audit")

Category = Literal["authentication", "iam", "configuration"]


def audit(
    category: Category,
    action: str,
    *,
    outcome: Literal["success", "failure"] = "success",
    **fields: object,
) -> None:
    """Log one security event. ``fields`` are ECS names with dots spelt as ``__``
    (``user__id=1`` is ``user.id``); None values are left out."""
    extra: dict[str, object] = {
        "event.kind": "event",
        "event.category": category,
        "event.action": action,
        "event.outcome": outcome,
    }
    # ECS's user ids (``user.id``, ``user.target.id``) are keywords: written as text.
    extra.update(
        {
            name.replace("__", "."): str(value)
            if name.startswith("user__") and name.endswith("__id")
            else value
            for name, value in fields.items()
            if value is not None
        }
    )
    log.info("%s %s", action, outcome, extra=extra)
