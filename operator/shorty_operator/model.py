"""The pure parts of reconciling a ShortLink: what Shorty should hold, what differs,
and the status to show.

- ``external_ref`` names the link a ShortLink owns (``k8s:<ns>/<name>/<uid>``):
  the operator finds and upserts links by it, so a restart or a replayed event
  never makes a second link;
- ``desired`` turns the ShortLink's spec into the fields of the Shorty API's
  link (snake_case, as ``PATCH /api/v1/urls/{code}`` takes them);
- ``drift`` lists the fields where the link in Shorty differs from that (edited
  through the API behind the operator's back);
- ``ready`` and ``status`` build the ``Ready`` condition and the status block.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from shorty.core.codes import validate_alias
from shorty.core.errors import InvalidAlias, InvalidTag, InvalidTarget
from shorty.core.links import check_tags
from shorty.core.targets import FORM_ONLY, normalize_target

DEFAULT_REDIRECT = 302
# spec.forwardQuery -> the API's forward_query ("off" would read as false in YAML 1.1).
FORWARD_QUERY = {"None": "off", "Append": "append", "Override": "override"}


class InvalidSpec(ValueError):
    """A spec Shorty would refuse though the CRD admitted it (a reserved code, say):
    the ShortLink shows it, and it is not retried until the spec changes."""


class Reason(StrEnum):
    SYNCED = "Synced"  # the link matches the spec
    CONFLICT = "Conflict"  # the code belongs to another link; retried until it frees up
    INVALID_SPEC = "InvalidSpec"  # Shorty refuses the spec itself; not retried
    API_UNAVAILABLE = "ApiUnavailable"  # Shorty could not be reached; retried with backoff


def external_ref(namespace: str, name: str, uid: str) -> str:
    """The reference a ShortLink's link carries in Shorty. The UID makes a ShortLink
    deleted and created again under the same name a new link."""
    return f"k8s:{namespace}/{name}/{uid}"


def desired(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The link Shorty should hold for ``spec``; ``alias`` only when a code is set.
    Fields the spec leaves out take the API's defaults (no expiry, no click limit).
    The target and tags are in the form Shorty keeps them (so a link never looks
    drifted for a spelling). InvalidSpec for what Shorty's own rules refuse (the same
    rules of form, checked here; where links may point — the block-list, private
    addresses, look-alike names — is the API's to say: its 422 is InvalidSpec too)."""
    try:
        target = normalize_target(spec["target"], FORM_ONLY)
        tags = list(check_tags(list(spec.get("tags", []))))
        alias = validate_alias(spec["code"]) if spec.get("code") else None
    except (InvalidAlias, InvalidTag, InvalidTarget) as exc:
        raise InvalidSpec(str(exc)) from None
    fields: dict[str, Any] = {
        "target": target,
        "redirect_type": int(spec.get("redirectType", DEFAULT_REDIRECT)),
        "expires_at": spec.get("expiresAt"),
        "max_clicks": spec.get("maxClicks"),
        "tags": tags,
        "disabled": bool(spec.get("disabled", False)),
        "forward_query": FORWARD_QUERY[spec.get("forwardQuery", "None")],
        "title": spec.get("title") or None,
    }
    if alias is not None:
        fields["alias"] = alias
    return fields


def drift(want: Mapping[str, Any], link: Mapping[str, Any]) -> list[str]:
    """The fields of ``want`` (from ``desired``) that the API's ``link`` differs in,
    sorted. Times compare as instants."""
    differs = []
    for name, value in want.items():
        if name == "alias":
            if link.get("code") != value:
                differs.append(name)
        elif name == "expires_at":
            if _instant(value) != _instant(link.get(name)):
                differs.append(name)
        elif name == "tags":
            if list(link.get(name) or []) != value:
                differs.append(name)
        elif link.get(name) != value:
            differs.append(name)
    return sorted(differs)


def ready(
    reason: Reason, message: str, generation: int | None, now: datetime | None = None
) -> dict[str, Any]:
    """The ``Ready`` condition: True only when synced."""
    return {
        "type": "Ready",
        "status": "True" if reason is Reason.SYNCED else "False",
        "reason": reason.value,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": _stamp(now),
    }


def status(
    condition: dict[str, Any],
    previous: Mapping[str, Any] | None = None,
    *,
    link: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The status block to patch. ``previous``: the status as it is (a condition that
    did not change keeps its transition time); ``link``: the API's link when known."""
    before = ready_condition(previous)
    if before and (before.get("status"), before.get("reason")) == (
        condition["status"],
        condition["reason"],
    ):
        condition = {**condition, "lastTransitionTime": before.get("lastTransitionTime")}
    block: dict[str, Any] = {
        "conditions": [condition],
        "observedGeneration": condition["observedGeneration"],
        "lastSyncTime": _stamp(now),
    }
    if link is not None:
        block |= {
            "code": link["code"],
            "shortUrl": link["short_url"],
            "clicks": link["click_count"],
        }
    return block


def ready_condition(block: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``Ready`` condition of a status block, if it has one."""
    conditions = (block or {}).get("conditions") or []
    return next((dict(c) for c in conditions if c.get("type") == "Ready"), None)


def _instant(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def _stamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
