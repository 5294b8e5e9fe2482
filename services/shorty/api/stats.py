"""Statistics routes: one link's clicks, and a summary over the caller's links."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import validate
from shorty.api.links import link_code
from shorty.api.schemas import (
    LinkStats,
    RankedValue,
    StatsPoint,
    StatsQuery,
    StatsSummary,
    StatsTotals,
    SummaryQuery,
    SummaryTotals,
    TopLink,
)
from shorty.bootstrap import api_deps_of
from shorty.store.stats import Report, Window
from shorty.usecases import links
from shorty.web.problems import Problem

DEFAULT_SPAN = timedelta(days=30)
MAX_POINTS = 2000


async def link_stats(request: Request) -> Response:
    """``GET /urls/{code}/stats``: the caller's link (any link for an admin), else 404."""
    principal = await authenticate(request, "stats:read")
    code = link_code(request)
    query = validate(dict(request.query_params), StatsQuery)
    window = window_of(query, datetime.now(UTC))
    deps = api_deps_of(request)
    link = await links.find(deps, principal, code)
    report = await deps.stats.link(link.id, window, query.top)
    out = LinkStats(
        code=link.code,
        start=window.start,
        end=window.end,
        interval=window.interval,
        bots=window.bots,
        series=_series(report),
        totals=StatsTotals(**_totals(report)),
        referrers=_ranked(report, "referrer"),
        countries=_ranked(report, "country"),
        browsers=_ranked(report, "browser"),
        os=_ranked(report, "os"),
        devices=_ranked(report, "device"),
    )
    return JSONResponse(out.model_dump(mode="json", by_alias=True))


async def summary(request: Request) -> Response:
    """``GET /stats/summary``: over the caller's links; ``all=true`` (admins): every link."""
    principal = await authenticate(request, "stats:read")
    query = validate(dict(request.query_params), SummaryQuery)
    if query.all and not principal.is_admin:
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            "all=true needs an admin user's key with the 'admin' scope.",
        )
    window = window_of(query, datetime.now(UTC))
    deps = api_deps_of(request)
    report = await deps.stats.summary(None if query.all else principal.user_id, window, query.top)
    base = deps.settings.public_base
    out = StatsSummary(
        start=window.start,
        end=window.end,
        interval=window.interval,
        bots=window.bots,
        all=query.all,
        series=_series(report),
        totals=SummaryTotals(**_totals(report), links=report.links),
        top_links=[
            TopLink(
                code=link.code,
                short_url=f"{base}/{link.code}",
                target=link.target,
                clicks=link.clicks,
                visitors=link.visitors,
            )
            for link in report.top_links
        ],
        referrers=_ranked(report, "referrer"),
        countries=_ranked(report, "country"),
    )
    return JSONResponse(out.model_dump(mode="json", by_alias=True))


def window_of(query: StatsQuery, now: datetime) -> Window:
    """The whole buckets the query asks for, or a 422 that says why it cannot have them."""
    end = query.end or now
    start = query.start or end - DEFAULT_SPAN
    if start >= end:
        raise Problem(
            422,
            "validation-failed",
            "The request is not valid",
            "from must be before to.",
            errors=[{"field": "from", "message": "must be before to"}],
        )
    window = Window.covering(start, end, query.interval, query.bots)
    if window.points > MAX_POINTS:
        raise Problem(
            422,
            "range-too-large",
            "Range too large",
            f"{'An hourly' if query.interval == 'hour' else 'A daily'} series from"
            f" {window.start.isoformat()} to {window.end.isoformat()} has {window.points:,}"
            f" points; at most {MAX_POINTS:,} are served. Narrow from/to"
            + (" or ask for interval=day." if query.interval == "hour" else "."),
        )
    return window


def _series(report: Report) -> list[StatsPoint]:
    return [StatsPoint(at=p.at, clicks=p.clicks, visitors=p.visitors) for p in report.series]


def _totals(report: Report) -> dict[str, int]:
    totals = report.totals
    return {"clicks": totals.clicks, "visitors": totals.visitors, "bot_clicks": totals.bot_clicks}


def _ranked(report: Report, dimension: str) -> list[RankedValue]:
    return [
        RankedValue(value=r.value, clicks=r.clicks, visitors=r.visitors)
        for r in report.top[dimension]
    ]
