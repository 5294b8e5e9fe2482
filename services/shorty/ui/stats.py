"""A link's analytics page: clicks over time (people and bots apart), visitors, and
the top referrers, countries, browsers, systems and devices, for a date range —
from the API's ``/urls/{code}/stats``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shorty.core.codes import is_well_formed
from shorty.ui.charts import Bucket, clicks_over_time, share_bar
from shorty.ui.client import api_of
from shorty.ui.forms import errors_of
from shorty.ui.render import error_page, page, refused
from shorty.ui.session import Viewer

DEFAULT_DAYS = 30
# The API's list, its heading, its column, and what an empty value means.
TOPS = [
    ("referrers", "Referrers", "Referrer", "Direct or unknown"),
    ("countries", "Countries", "Country", "Unknown"),
    ("browsers", "Browsers", "Browser", "Unknown"),
    ("os", "Operating systems", "System", "Unknown"),
    ("devices", "Devices", "Device", "Unknown"),
]


def _day(text: str, fallback: date) -> date | None:
    """A date field: ``fallback`` when empty, None when it is no date."""
    if not text:
        return fallback
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if 2000 <= day.year <= 2999 else None  # the API's years


async def link_stats(request: Request, signed: Viewer) -> Response:
    code = request.path_params["code"]
    if not is_well_formed(code):
        return await error_page(request, 404, "Link not found", "No link of yours has this code.")
    params = request.query_params
    today = datetime.now(UTC).date()
    first = _day(params.get("from", ""), today - timedelta(days=DEFAULT_DAYS - 1))
    last = _day(params.get("to", ""), today)
    interval = "hour" if params.get("interval") == "hour" else "day"
    form = {
        "from": params.get("from") or str(first),
        "to": params.get("to") or str(last),
        "interval": interval,
    }
    context: dict[str, Any] = {"code": code, "form": form, "errors": {}, "error": "", "stats": None}
    if first is None or last is None:
        context["errors"] = {
            name: "Enter a date as YYYY-MM-DD, in the years 2000 to 2999."
            for name, value in (("from", first), ("to", last))
            if value is None
        }
        return await page(request, "stats.html", context, status=422, section="links")
    window = {
        "from": f"{first.isoformat()}T00:00:00Z",
        "to": f"{(last + timedelta(days=1)).isoformat()}T00:00:00Z",  # the last day whole
        "interval": interval,
    }
    api, path = api_of(request), f"/api/v1/urls/{code}/stats"
    people = await api.call(
        request, "GET", path, token=signed.token, params={**window, "bots": "exclude"}
    )
    if people.ok:
        bots = await api.call(
            request, "GET", path, token=signed.token, params={**window, "bots": "only", "top": 5}
        )
        if not bots.ok:
            return await refused(request, bots)
        context["stats"] = _shown(people.json(), bots.json(), interval)
    elif people.status == 422:
        errors, message = errors_of(people.problem, ["from", "to", "interval"])
        context.update(errors=errors, error=message)
    else:
        return await refused(request, people)
    status = 200 if people.ok else people.status
    return await page(request, "stats.html", context, status=status, section="links")


def _shown(people: dict[str, Any], bots: dict[str, Any], interval: str) -> dict[str, Any]:
    buckets = []
    for mine, theirs in zip(people["series"], bots["series"], strict=True):
        at = datetime.fromisoformat(mine["at"])
        label = at.strftime("%H:00" if interval == "hour" else "%d %b")
        title = at.strftime("%Y-%m-%d %H:00 UTC" if interval == "hour" else "%Y-%m-%d")
        buckets.append(Bucket(label, title, mine["clicks"], theirs["clicks"]))
    rows = [
        {
            "title": bucket.title,
            "people": bucket.people,
            "visitors": point["visitors"],
            "bots": bucket.bots,
        }
        for bucket, point in zip(buckets, people["series"], strict=True)
    ]
    tops = []
    for key, heading, column, empty in TOPS:
        entries = people[key]
        most = max((e["clicks"] for e in entries), default=0)
        tops.append(
            {
                "key": key,
                "heading": heading,
                "column": column,
                "rows": [
                    {
                        "value": e["value"] or empty,
                        "clicks": e["clicks"],
                        "visitors": e["visitors"],
                        "bar": share_bar(e["clicks"], most, f"{e['clicks']} of {most}"),
                    }
                    for e in entries
                ],
            }
        )
    bot_names = [
        {"value": e["value"] or "Unknown", "clicks": e["clicks"]} for e in bots["browsers"]
    ]
    return {
        "chart": clicks_over_time(buckets, "Clicks over time", "clicks"),
        "rows": rows,
        "totals": {
            "clicks": people["totals"]["clicks"],
            "visitors": people["totals"]["visitors"],
            "bots": people["totals"]["bot_clicks"],
        },
        "tops": tops,
        "bot_names": bot_names,
    }
