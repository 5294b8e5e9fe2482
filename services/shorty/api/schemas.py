"""Request and response bodies. Unknown fields are refused, not ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shorty.api.fields import (
    AliasText,
    ClickLimit,
    Flag,
    ForwardQuery,
    NoteText,
    QueryBool,
    RedirectType,
    TagList,
    TargetText,
    Timestamp,
    TitleText,
    optional,
)
from shorty.api.params import QueryInt
from shorty.core.links import BlockReason, Link


class ShortenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: TargetText = Field(description="The http(s) URL to shorten.")
    alias: AliasText | None = Field(None, description="A custom code (3-64 chars).")
    expires_at: Timestamp | None = Field(
        None, description="When the link stops redirecting (RFC 3339 with a time zone)."
    )
    title: TitleText | None = None
    tags: TagList | None = None
    max_clicks: ClickLimit | None = Field(None, description="Clicks after which it answers 410.")
    redirect_type: RedirectType | None = Field(None, description="Default: 302.")
    forward_query: ForwardQuery | None = Field(None, description="Default: off.")


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


class Block(BaseModel):
    """An admin's takedown: the link answers 410 (451 for ``legal``); only an admin
    lifts it."""

    reason: BlockReason
    note: str | None
    at: datetime


class LinkDetail(LinkOut):
    updated_at: datetime
    click_count: int
    redirect_type: int
    disabled: bool
    max_clicks: int | None
    title: str | None
    tags: list[str]
    forward_query: ForwardQuery
    blocked: Block | None = Field(description="Set by an admin; the owner cannot clear it.")
    state: Literal["active", "expired", "disabled", "exhausted", "blocked"] = Field(
        description="Whether it redirects now, and if not, why (a block first)."
    )

    @classmethod
    def of(cls, link: Link, base: str) -> LinkDetail:
        blocked = None
        if link.blocked_reason is not None and link.blocked_at is not None:
            blocked = Block(
                reason=link.blocked_reason,
                note=link.blocked_note,
                at=link.blocked_at,
            )
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
            blocked=blocked,
            state=link.state_at(datetime.now(UTC)).value,
        )


class BlockRequest(BaseModel):
    """Block a link (again: the reason and note are replaced)."""

    model_config = ConfigDict(extra="forbid")

    reason: BlockReason = Field(description="legal answers 451, every other reason 410.")
    note: NoteText | None = Field(None, description="Shown to the link's owner.")


class UpdateRequest(BaseModel):
    """Only the fields present change; ``null`` clears title, expires_at and max_clicks."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    target: TargetText | None = optional()
    title: TitleText | None = None
    tags: TagList | None = optional()
    expires_at: Timestamp | None = None
    max_clicks: ClickLimit | None = None
    redirect_type: RedirectType | None = optional()
    disabled: Flag | None = optional()
    forward_query: ForwardQuery | None = optional()


class RefQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ref: str = Field(
        min_length=1,
        max_length=512,
        description="The reference the link is declared under, e.g. k8s:<namespace>/<name>/<uid>.",
    )


class DeclareRequest(BaseModel):
    """The whole link as declared elsewhere (a ShortLink, say): a field left out takes
    its default, so leaving a field out of a declaration clears it."""

    model_config = ConfigDict(extra="forbid")

    target: TargetText = Field(description="The http(s) URL to redirect to.")
    alias: AliasText | None = Field(
        None, description="The code (3-64 chars); it never changes once set."
    )
    title: TitleText | None = None
    tags: TagList = Field(default_factory=list)
    expires_at: Timestamp | None = Field(
        None, description="May lie in the past: the link is then declared expired (410)."
    )
    max_clicks: ClickLimit | None = None
    redirect_type: RedirectType = 302
    disabled: Flag = False
    forward_query: ForwardQuery = "off"


class DeclaredLink(LinkDetail):
    external_ref: str

    @classmethod
    def of(cls, link: Link, base: str) -> DeclaredLink:
        assert link.external_ref is not None
        return cls(**LinkDetail.of(link, base).model_dump(), external_ref=link.external_ref)


class LinkPage(BaseModel):
    items: list[LinkDetail]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page.")


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: QueryInt = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=200)
    tag: str | None = Field(None, max_length=40)
    q: str | None = Field(None, max_length=200, description="Text in the target or title.")
    created_after: Timestamp | None = None
    created_before: Timestamp | None = None
    state: Literal["active", "disabled", "expired", "blocked"] | None = None
    sort: Literal["created", "clicks"] = Field(
        "created", description="Newest first, or most clicked first; a cursor keeps its order."
    )


class QrQuery(BaseModel):
    format: Literal["svg", "png"] = "svg"
    size: QueryInt = Field(8, ge=1, le=40, description="Size of one module (square) of the code.")


BULK_MAX = 1000  # links in one bulk request


class BulkRequest(BaseModel):
    """Up to 1,000 links; each item is checked as the body of /shorten, on its own."""

    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, object]] = Field(min_length=1, max_length=BULK_MAX)


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


# Statistics: GET /urls/{code}/stats and GET /stats/summary (api/stats.py).


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: Timestamp | None = Field(
        None,
        alias="from",
        description="Start (RFC 3339 with a time zone), rounded down to its bucket;"
        " default: `to` minus 30 days.",
    )
    end: Timestamp | None = Field(
        None,
        alias="to",
        description="End, exclusive, rounded up to the end of its bucket; default: now.",
    )
    interval: Literal["hour", "day"] = Field("day", description="Bucket size (UTC).")
    bots: Literal["include", "exclude", "only"] = Field(
        "include", description="Which clicks count: every one, people's only, or bots' only."
    )
    top: QueryInt = Field(10, ge=1, le=100, description="Entries in each top list.")


class SummaryQuery(StatsQuery):
    all: QueryBool = Field(False, description="Every user's links, not only yours (admins only).")


class StatsTotals(BaseModel):
    clicks: int = Field(description="Clicks the `bots` filter keeps.")
    visitors: int = Field(
        description="Unique visitors per UTC day, summed over the days (see docs/api.md)."
    )
    bot_clicks: int = Field(description="Clicks by bots, whatever the `bots` filter.")


class StatsPoint(BaseModel):
    at: datetime = Field(description="Start of the bucket (UTC).")
    clicks: int
    visitors: int


class RankedValue(BaseModel):
    value: str = Field(description="'' means none or unknown (a direct visit, no country).")
    clicks: int
    visitors: int


class StatsWindow(BaseModel):
    start: datetime = Field(serialization_alias="from", description="First bucket's start.")
    end: datetime = Field(serialization_alias="to", description="Last bucket's end (exclusive).")
    interval: Literal["hour", "day"]
    bots: Literal["include", "exclude", "only"]
    series: list[StatsPoint] = Field(description="Every bucket of the window, oldest first.")


class LinkStats(StatsWindow):
    """One link's clicks: totals, a zero-filled series and top values."""

    code: str
    totals: StatsTotals
    referrers: list[RankedValue] = Field(description="Referrer hosts; '' is a direct visit.")
    countries: list[RankedValue] = Field(description="ISO 3166 codes; '' is unknown.")
    browsers: list[RankedValue] = Field(description="Browser families; 'Other' is unknown.")
    os: list[RankedValue] = Field(description="Operating system families.")
    devices: list[RankedValue] = Field(description="Device families.")


class SummaryTotals(StatsTotals):
    links: int = Field(description="Links with clicks the `bots` filter keeps.")


class TopLink(BaseModel):
    code: str
    short_url: str
    target: str
    clicks: int
    visitors: int


class StatsSummary(StatsWindow):
    """Clicks over all your links (all=true: everyone's)."""

    all: bool
    totals: SummaryTotals
    top_links: list[TopLink] = Field(description="By clicks, then code.")
    referrers: list[RankedValue]
    countries: list[RankedValue]
