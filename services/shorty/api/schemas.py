"""Request and response bodies. Unknown fields are refused, not ignored."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shorty.core.links import Link


def _rfc3339_text(value: object) -> object:
    # Numbers would be taken as epoch seconds; only a date-time string is meant.
    if value is not None and not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2030-01-01T00:00:00Z")
    return value


class ShortenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    target: str = Field(max_length=8192, description="The http(s) URL to shorten.")
    alias: str | None = Field(None, max_length=256, description="A custom code (3-64 chars).")
    expires_at: AwareDatetime | None = Field(
        None, description="When the link stops redirecting (RFC 3339 with a time zone)."
    )

    _text_datetime = field_validator("expires_at", mode="before")(_rfc3339_text)


class LinkOut(BaseModel):
    code: str
    short_url: str
    target: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, link: Link, base: str) -> LinkOut:
        return cls(
            code=link.code,
            short_url=f"{base}/{link.code}",
            target=link.target,
            created_at=link.created_at,
            expires_at=link.expires_at,
        )


class LinkDetail(LinkOut):
    updated_at: datetime
    click_count: int
    redirect_type: int
    disabled: bool
    max_clicks: int | None
    title: str | None
    tags: list[str]
    forward_query: bool

    @classmethod
    def of(cls, link: Link, base: str) -> LinkDetail:
        return cls(
            **LinkOut.of(link, base).model_dump(),
            updated_at=link.updated_at,
            click_count=link.click_count,
            redirect_type=link.redirect_type,
            disabled=link.disabled,
            max_clicks=link.max_clicks,
            title=link.title,
            tags=list(link.tags),
            forward_query=link.forward_query,
        )


class UpdateRequest(BaseModel):
    """Only the fields present change; ``null`` clears title, expires_at and max_clicks."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    target: str | None = Field(None, max_length=8192)
    title: str | None = Field(None, max_length=500)
    tags: list[str] | None = Field(None, max_length=100)
    expires_at: AwareDatetime | None = None
    max_clicks: int | None = Field(None, ge=1, le=2_000_000_000)
    redirect_type: Literal[301, 302, 307, 308] | None = None
    disabled: bool | None = None
    forward_query: bool | None = None

    _text_datetime = field_validator("expires_at", mode="before")(_rfc3339_text)


NOT_NULL = frozenset({"target", "tags", "redirect_type", "disabled", "forward_query"})


class LinkPage(BaseModel):
    items: list[LinkDetail]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page.")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=200)
    tag: str | None = Field(None, max_length=40)
    q: str | None = Field(None, max_length=200, description="Text in the target or title.")
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    state: Literal["active", "expired"] | None = None


class BulkRequest(BaseModel):
    """Up to 1,000 links; each item is checked as the body of /shorten, on its own."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, object]] = Field(min_length=1, max_length=1000)


class BulkItem(BaseModel):
    index: int
    status: int
    link: LinkOut | None = None
    problem: dict[str, object] | None = None


class BulkResult(BaseModel):
    """One result per item, in item order."""

    created: int
    failed: int
    results: list[BulkItem]
