"""The link: what a short code stands for, whether it may redirect now, and the
rules a change must pass (expiry, tags, a declaration by reference)."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from shorty.core.errors import CodeImmutable, InvalidExpiry, InvalidTag, ReferenceTaken

REDIRECT_TYPES = frozenset({301, 302, 307, 308})
MAX_LIFETIME = timedelta(days=36_525)  # an expiry at most ~100 years ahead
# What a link does with the visitor's query string: nothing; add the parameters the
# target lacks (and utm_*, which the visitor's replace); or let the visitor's win.
ForwardMode = Literal["off", "append", "override"]
# Why an admin blocked a link. ``legal`` answers 451 (RFC 7725), the others 410.
BlockReason = Literal["legal", "abuse", "malware", "phishing", "spam", "other"]


class LinkState(enum.Enum):
    ACTIVE = "active"
    EXPIRED = "expired"
    DISABLED = "disabled"
    EXHAUSTED = "exhausted"
    BLOCKED = "blocked"


def blocked_status(reason: str | None) -> int:
    """The status a blocked link answers: 451 for a legal reason, else 410; 0 when
    the link is not blocked."""
    if reason is None:
        return 0
    return 451 if reason == "legal" else 410


@dataclass(frozen=True, slots=True)
class Link:
    id: int
    code: str
    target: str
    owner_id: int | None
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    click_count: int = 0
    redirect_type: int = 302
    disabled: bool = False
    max_clicks: int | None = None
    title: str | None = None
    tags: tuple[str, ...] = ()
    forward_query: ForwardMode = "off"
    external_ref: str | None = None  # who declared it elsewhere (the operator: k8s:ns/name/uid)
    blocked_reason: BlockReason | None = None  # set by an admin only
    blocked_note: str | None = None
    blocked_at: datetime | None = None

    def state_at(self, now: datetime) -> LinkState:
        """Whether the link redirects at ``now``, and if not, why."""
        expires = self.expires_at.timestamp() if self.expires_at is not None else None
        blocked = self.blocked_reason is not None
        state = state_of(self.disabled, expires, now.timestamp(), blocked)
        exhausted = self.max_clicks is not None and self.click_count >= self.max_clicks
        return LinkState.EXHAUSTED if state is LinkState.ACTIVE and exhausted else state


def state_of(
    disabled: bool, expires_at: float | None, now: float, blocked: bool = False
) -> LinkState:
    """The rule for blocked, disabled and expired links (POSIX seconds), shared by
    every tier. A block comes first: it is what the visitor must be told."""
    if blocked:
        return LinkState.BLOCKED
    if disabled:
        return LinkState.DISABLED
    if expires_at is not None and expires_at <= now:
        return LinkState.EXPIRED
    return LinkState.ACTIVE


def check_expiry(
    expires_at: datetime | None, now: datetime, *, past_ok: bool = False
) -> datetime | None:
    """An expiry must carry a time zone and lie in the future (or, with ``past_ok``,
    already have passed: a link declared expired) and at most ~100 years ahead."""
    if expires_at is None:
        return None
    if expires_at.tzinfo is None or expires_at.utcoffset() is None:
        raise InvalidExpiry("expires_at must include a time zone, e.g. 2030-01-01T00:00:00Z.")
    if expires_at <= now and not past_ok:
        raise InvalidExpiry("expires_at must be in the future.")
    if expires_at - now > MAX_LIFETIME:
        raise InvalidExpiry("expires_at may be at most 100 years ahead.")
    return expires_at


TAG_MAX = 40
TAGS_MAX = 20
_TAG = re.compile(r"[\w][\w .:/+-]*")


def check_tags(tags: list[str]) -> tuple[str, ...]:
    """Tags are trimmed, lower-cased and deduplicated, in the order given."""
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not 1 <= len(tag) <= TAG_MAX or not _TAG.fullmatch(tag):
            raise InvalidTag(
                f"'{tag}' is not a tag: 1 to {TAG_MAX} letters, digits, spaces or . : / + - _"
            )
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > TAGS_MAX:
        raise InvalidTag(f"A link may have at most {TAGS_MAX} tags.")
    return tuple(cleaned)


# A permanent redirect is cached by browsers (and CDNs), which would keep following
# it past an expiry or a click limit: the table refuses the pair (0008), and says so.
PERMANENT_WITH_LIMITS = (
    "A permanent redirect (301 or 308) is cached by browsers, so expires_at and max_clicks"
    " could not be enforced: use 302 or 307 for a link with either."
)


class Outcome(enum.StrEnum):
    """What a declaration by reference did."""

    CREATED = "created"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


def check_redeclaration(link: Link, ref: str, owner_id: int | None, alias: str | None) -> None:
    """A declaration under ``ref`` may change the ``link`` declared there only if it
    is its owner's (``owner_id`` None: anyone's), and never its code: ReferenceTaken,
    CodeImmutable otherwise."""
    if owner_id is not None and link.owner_id != owner_id:
        raise ReferenceTaken(f"The reference '{ref}' belongs to another user's link.")
    if alias is not None and alias != link.code:
        raise CodeImmutable(
            f"The link declared as '{ref}' has the code '{link.code}'; a code never changes."
        )


def differences(link: Link, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fields`` whose value ``link`` does not hold already: what a repeated
    declaration changes (nothing, so it writes nothing and sends no event)."""
    return {name: value for name, value in fields.items() if _held(link, name) != value}


def _held(link: Link, name: str) -> Any:
    """What ``link`` holds in the field ``name``, as a change would give it."""
    value = getattr(link, name)
    return value if name != "tags" else tuple(value)
