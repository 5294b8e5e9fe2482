"""Request and response bodies. Unknown fields are refused, not ignored."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from shorty.core.links import Link


class ShortenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    target: str = Field(max_length=8192, description="The http(s) URL to shorten.")
    alias: str | None = Field(None, max_length=256, description="A custom code (3-64 chars).")
    expires_at: AwareDatetime | None = Field(
        None, description="When the link stops redirecting (RFC 3339 with a time zone)."
    )

    @field_validator("expires_at", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: object) -> object:
        # Numbers would be taken as epoch seconds; only a date-time string is meant.
        if value is not None and not isinstance(value, str):
            raise ValueError("must be an RFC 3339 date-time string, e.g. 2030-01-01T00:00:00Z")
        return value


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

    @classmethod
    def of(cls, link: Link, base: str) -> LinkDetail:
        return cls(
            **LinkOut.of(link, base).model_dump(),
            updated_at=link.updated_at,
            click_count=link.click_count,
            redirect_type=link.redirect_type,
            disabled=link.disabled,
            max_clicks=link.max_clicks,
        )
