"""The pure parts of reconciling a ShortLink: what Shorty should hold, what differs,
and the status to show.

- ``external_ref`` names the link a ShortLink owns (``k8s:<ns>/<name>/<uid>``):
  the operator finds and upserts links by it, so a restart or a replayed event
  never makes a second link;
- ``desired`` turns the ShortLink's spec into the fields of the Shorty API's
  link (snake_case, as ``PATCH /api/v1/urls/{code}`` takes them);
- ``drift`` lists the fields where the link in Shorty differs from that (edited
  through the API behind the operator's back);
- ``Outcome`` is what one reconciliation came to, and ``POLICY`` what follows
  each ``Reason``: whether it warns, how it is retried, whether the timer
  checks it again (``retry_delay`` turns that into seconds);
- ``ready`` and ``status`` build the ``Ready`` condition and the status block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
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
    """The ``Ready`` condition's reason: what the last reconciliation came to."""

    SYNCED = "Synced"  # the link matches the spec
    CONFLICT = "Conflict"  # the code belongs to another link
    INVALID_SPEC = "InvalidSpec"  # Shorty refuses the spec itself
    API_UNAVAILABLE = "ApiUnavailable"  # Shorty could not be reached


class Retry(StrEnum):
    """How a handler that came to a reason is tried again."""

    NO = "no"  # the handler is done (the timer may still check the link)
    STEADY = "steady"  # every --conflict-retry seconds, until the code frees up
    BACKOFF = "backoff"  # from --backoff, doubling up to BACKOFF_MAX


@dataclass(frozen=True, slots=True)
class Policy:
    """What follows a reason."""

    retry: Retry
    failure: str  # the handler's failure as kopf logs it at each retry ("" when none)
    warns: bool  # a warning event when the ShortLink comes to it (once per generation)
    timer_checks: bool  # False: the timer leaves it alone until the spec changes


POLICY: Mapping[Reason, Policy] = MappingProxyType(
    {
        Reason.SYNCED: Policy(Retry.NO, "", warns=False, timer_checks=True),
        Reason.CONFLICT: Policy(Retry.STEADY, "the code is taken", warns=True, timer_checks=True),
        Reason.INVALID_SPEC: Policy(Retry.NO, "", warns=True, timer_checks=False),
        Reason.API_UNAVAILABLE: Policy(
            Retry.BACKOFF, "Shorty is unavailable", warns=True, timer_checks=True
        ),
    }
)
BACKOFF_MAX = 300.0


def retry_delay(
    reason: Reason, retry: int, *, steady: float, backoff: float, at_least: float = 0.0
) -> float | None:
    """Seconds until the handler is tried again after ``reason`` at try number ``retry``
    (0 the first): None when it is not retried. A backoff is never shorter than
    ``at_least``: the rest of the API breaker's cool-down, during which a try would be
    refused without a call anyway."""
    match POLICY[reason].retry:
        case Retry.STEADY:
            return steady
        case Retry.BACKOFF:
            return max(float(min(backoff * 2 ** min(retry, 16), BACKOFF_MAX)), at_least)
        case Retry.NO:
            return None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one reconciliation came to: the reason, the condition's message, and the
    API's link when it was synced."""

    reason: Reason
    message: str
    link: Mapping[str, Any] | None = None


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
