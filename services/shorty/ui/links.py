"""The links pages: the table, a link, create, edit, disable, delete, its QR code,
and CSV import and export — each through the API's own routes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from shorty.api.schemas import BULK_MAX
from shorty.core.codes import is_well_formed
from shorty.ui.admin import REASONS
from shorty.ui.client import Answer, api_of
from shorty.ui.forms import (
    Form,
    errors_of,
    number,
    tag_list,
    utc_time,
)
from shorty.ui.render import error_page, page, refused, see
from shorty.ui.session import Viewer

PAGE_SIZE = 25
STATES = [
    ("", "Any"),
    ("active", "Active"),
    ("disabled", "Disabled"),
    ("expired", "Expired"),
    ("blocked", "Blocked"),
]
SORTS = [("created", "Newest first"), ("clicks", "Most clicks first")]
REDIRECT_TYPES = [
    (302, "302 Found (default)"),
    (307, "307 Temporary Redirect"),
    (301, "301 Moved Permanently"),
    (308, "308 Permanent Redirect"),
]
FORWARD_MODES = [
    ("off", "Not passed on (default)"),
    ("append", "Added to the target's own"),
    ("override", "Replaces the target's own where names clash"),
]
_FORWARD_TEXT = {"off": "not passed on", "append": "added", "override": "passed on, overriding"}
_FIELDS = (
    "target",
    "alias",
    "title",
    "tags",
    "expires_at",
    "max_clicks",
    "redirect_type",
    "forward_query",
)
CSV_COLUMNS = frozenset(_FIELDS)


async def index(request: Request, signed: Viewer) -> Response:
    params = request.query_params
    state, sort = params.get("state", ""), params.get("sort", "")
    filters = {
        "q": params.get("q", "").strip(),
        "tag": params.get("tag", "").strip(),
        "state": state if state in dict(STATES) else "",
        "sort": sort if sort in dict(SORTS) else "created",
    }
    cursor = params.get("cursor", "")
    query = {**filters, "cursor": cursor, "limit": PAGE_SIZE}
    answer = await api_of(request).call(
        request, "GET", "/api/v1/urls", token=signed.token, params=query
    )
    context: dict[str, Any] = {
        "filters": filters,
        "states": STATES,
        "sorts": SORTS,
        "sort_text": dict(SORTS)[filters["sort"]].lower(),
        "links": [],
        "error": "",
        "filtered": any(filters[k] for k in ("q", "tag", "state")),
        "first_page": "",
        "next_page": "",
    }
    kept = {k: v for k, v in filters.items() if v and not (k == "sort" and v == "created")}
    if answer.ok:
        found = answer.json()
        context["links"] = found["items"]
        if found["next_cursor"]:
            context["next_page"] = "/ui/links?" + urlencode(
                {**kept, "cursor": found["next_cursor"]}
            )
    elif answer.status == 422:
        _, context["error"] = errors_of(answer.problem, [])
    else:
        return await refused(request, answer)
    if cursor:
        context["first_page"] = "/ui/links" + (f"?{urlencode(kept)}" if kept else "")
    return await page(request, "links.html", context, section="links")


def _form_of(link: dict[str, Any] | None) -> dict[str, Any]:
    """The form's values for ``link`` (a new link's defaults for None)."""
    if link is None:
        return {
            "target": "",
            "alias": "",
            "title": "",
            "tags": "",
            "expires_at": "",
            "max_clicks": "",
            "redirect_type": 302,
            "forward_query": "off",
            "disabled": False,
        }
    expires = link["expires_at"]
    return {
        "target": link["target"],
        "alias": link["code"],
        "title": link["title"] or "",
        "tags": ", ".join(link["tags"]),
        "expires_at": datetime.fromisoformat(expires).astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        if expires
        else "",
        "max_clicks": link["max_clicks"] or "",
        "redirect_type": link["redirect_type"],
        "forward_query": link["forward_query"],
        "disabled": link["disabled"],
    }


def _form_context(**values: Any) -> dict[str, Any]:
    return {
        "redirect_types": REDIRECT_TYPES,
        "forward_modes": FORWARD_MODES,
        "errors": {},
        "error": "",
        **values,
    }


async def new_page(request: Request, signed: Viewer) -> Response:
    context = _form_context(
        heading="New link",
        action="/ui/new",
        submit="Create link",
        cancel="/ui/links",
        creating=True,
        form=_form_of(None),
    )
    return await page(request, "link_form.html", context, section="new")


async def create(request: Request, signed: Viewer, form: Form) -> Response:
    typed = {name: form.text(name) for name in _FIELDS}
    context = _form_context(
        heading="New link",
        action="/ui/new",
        submit="Create link",
        cancel="/ui/links",
        creating=True,
        form=typed,
    )
    body = {
        "target": typed["target"],
        "alias": typed["alias"] or None,
        "title": typed["title"] or None,
        "tags": tag_list(typed["tags"]) or None,
        "expires_at": utc_time(typed["expires_at"]),
        "max_clicks": number(typed["max_clicks"]),
        "redirect_type": number(typed["redirect_type"]),
        "forward_query": typed["forward_query"] or None,
    }
    body = {name: value for name, value in body.items() if value is not None}
    answer = await api_of(request).call(
        request, "POST", "/api/v1/shorten", token=signed.token, body=body
    )
    if answer.ok:
        return see(f"/ui/links/{answer.json()['code']}", "created")
    return await _form_refused(request, answer, context, "new")


async def _form_refused(
    request: Request, answer: Answer, context: dict[str, Any], section: str
) -> Response:
    if answer.status in (401, 404) or answer.status >= 500:
        return await refused(request, answer)
    context["errors"], context["error"] = errors_of(answer.problem, _FIELDS)
    if not context["errors"] and not context["error"]:
        context["error"] = f"The link was not saved ({answer.status})."
    return await page(request, "link_form.html", context, status=answer.status, section=section)


async def _link(request: Request, signed: Viewer) -> dict[str, Any] | Response:
    code = request.path_params["code"]
    if not is_well_formed(code):
        return await error_page(request, 404, "Link not found", "No link of yours has this code.")
    answer = await api_of(request).call(request, "GET", f"/api/v1/urls/{code}", token=signed.token)
    if not answer.ok:
        return await refused(request, answer)
    link: dict[str, Any] = answer.json()
    return link


async def show(request: Request, signed: Viewer) -> Response:
    link = await _link(request, signed)
    if isinstance(link, Response):
        return link
    context = {
        "link": link,
        "state": link["state"],
        "forward_text": _FORWARD_TEXT.get(link["forward_query"], link["forward_query"]),
        "reasons": REASONS,
    }
    return await page(request, "link.html", context, section="links")


async def edit_page(request: Request, signed: Viewer) -> Response:
    link = await _link(request, signed)
    if isinstance(link, Response):
        return link
    return await page(
        request, "link_form.html", _edit_context(link["code"], _form_of(link)), section="links"
    )


def _edit_context(code: str, form: dict[str, Any]) -> dict[str, Any]:
    return _form_context(
        heading=f"Edit {code}",
        action=f"/ui/links/{code}/edit",
        submit="Save changes",
        cancel=f"/ui/links/{code}",
        creating=False,
        form=form,
    )


async def edit(request: Request, signed: Viewer, form: Form) -> Response:
    code = request.path_params["code"]
    typed: dict[str, Any] = {name: form.text(name) for name in _FIELDS}
    typed["disabled"] = form.text("disabled") == "on"
    context = _edit_context(code, typed)
    body = {
        "target": typed["target"],
        "title": typed["title"] or None,
        "tags": tag_list(typed["tags"]),
        "expires_at": utc_time(typed["expires_at"]),
        "max_clicks": number(typed["max_clicks"]),
        "redirect_type": number(typed["redirect_type"]) or 302,
        "forward_query": typed["forward_query"] or "off",
        "disabled": typed["disabled"],
    }
    answer = await _patch(request, signed, code, body)
    if answer.ok:
        return see(f"/ui/links/{code}", "saved")
    return await _form_refused(request, answer, context, "links")


async def _patch(request: Request, signed: Viewer, code: str, body: dict[str, Any]) -> Answer:
    if not is_well_formed(code):
        return Answer(404, {}, b"")
    return await api_of(request).call(
        request, "PATCH", f"/api/v1/urls/{code}", token=signed.token, body=body
    )


async def switch(request: Request, signed: Viewer, form: Form) -> Response:
    """Disable or enable a link (the path's last part says which)."""
    code, action = request.path_params["code"], request.url.path.rsplit("/", 1)[1]
    answer = await _patch(request, signed, code, {"disabled": action == "disable"})
    if not answer.ok:
        return await refused(request, answer)
    return see(f"/ui/links/{code}", f"{action}d")


async def delete_page(request: Request, signed: Viewer) -> Response:
    link = await _link(request, signed)
    if isinstance(link, Response):
        return link
    return await page(request, "delete.html", {"link": link, "error": ""}, section="links")


async def delete(request: Request, signed: Viewer, form: Form) -> Response:
    code = request.path_params["code"]
    if not is_well_formed(code):
        return await error_page(request, 404, "Link not found", "No link of yours has this code.")
    answer = await api_of(request).call(
        request, "DELETE", f"/api/v1/urls/{code}", token=signed.token
    )
    if not answer.ok:
        return await refused(request, answer)
    return see("/ui/links", "deleted")


async def qr(request: Request, signed: Viewer) -> Response:
    code, fmt = request.path_params["code"], request.path_params["format"]
    if not is_well_formed(code) or fmt not in ("svg", "png"):
        return await error_page(request, 404, "Link not found", "No link of yours has this code.")
    return api_of(request).forward(  # type: ignore[return-value]
        request, f"/api/v1/urls/{code}/qr", token=signed.token, params={"format": fmt}
    )


async def export(request: Request, signed: Viewer) -> Response:
    # The API's answer names the file (Content-Disposition) itself.
    return api_of(request).forward(  # type: ignore[return-value]
        request, "/api/v1/urls/export.csv", token=signed.token
    )


async def import_page(request: Request, signed: Viewer) -> Response:
    return await page(request, "import.html", _import_context(), section="import")


def _import_context(**values: Any) -> dict[str, Any]:
    return {"error": "", "results": [], "created": 0, "failed": 0, "max_rows": BULK_MAX, **values}


async def import_csv(request: Request, signed: Viewer, form: Form) -> Response:
    upload = form.files.get("file")
    rows = _rows(upload) if upload else "Choose a CSV file to import."
    if isinstance(rows, str):
        context = _import_context(error=rows)
        return await page(request, "import.html", context, status=422, section="import")
    items = [_item(row) for _, row in rows]
    answer = await api_of(request).call(
        request, "POST", "/api/v1/urls/bulk", token=signed.token, body={"items": items}
    )
    if not answer.ok:
        if answer.status in (401, 404) or answer.status >= 500:
            return await refused(request, answer)
        _, message = errors_of(answer.problem, [])
        context = _import_context(error=message)
        return await page(request, "import.html", context, status=answer.status, section="import")
    outcome = answer.json()
    results = []
    for (line, row), result in zip(rows, outcome["results"], strict=True):
        made = result.get("link") or {}
        results.append(
            {
                "line": line,
                "target": row.get("target", ""),
                "ok": result["status"] == 201,
                "code": made.get("code", ""),
                "short_url": made.get("short_url", ""),
                "message": _row_message(result.get("problem") or {}),
            }
        )
    context = _import_context(results=results, created=outcome["created"], failed=outcome["failed"])
    return await page(request, "import.html", context, section="import")


def _row_message(problem: dict[str, Any]) -> str:
    errors = problem.get("errors")
    if errors:
        return "; ".join(
            f"{str(e.get('field', '')).split('.')[-1]}: {e.get('message', '')}" for e in errors
        )
    return str(problem.get("detail") or problem.get("title") or "")


def _rows(raw: bytes) -> list[tuple[int, dict[str, str]]] | str:
    """The file's rows by line number, or what is wrong with the file."""
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "The file is not UTF-8 text. Save it as CSV (UTF-8) and try again."
    reader = csv.DictReader(io.StringIO(content, newline=""))
    try:
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        if "target" not in header:
            return "The first row must name the columns, one of them target."
        unknown = sorted(set(header) - CSV_COLUMNS - _EXPORT_ONLY - {""})
        if unknown:
            return (
                f"Unknown columns: {', '.join(unknown)}. Known: {', '.join(sorted(CSV_COLUMNS))}."
            )
        reader.fieldnames = header
        rows: list[tuple[int, dict[str, str]]] = []
        for row in reader:
            if len(rows) == BULK_MAX:
                return f"More than {BULK_MAX} rows: split the file."
            rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}))
    except csv.Error as exc:
        return f"The file is not valid CSV (line {reader.line_num}): {exc}."
    if not rows:
        return "The file holds no rows under its header."
    return rows


# Columns of an export that an import leaves to the new link (code: its alias).
_EXPORT_ONLY = frozenset(
    {"code", "short_url", "created_at", "updated_at", "click_count", "disabled", "blocked"}
)


def _item(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row as an item of /urls/bulk: empty cells left out, numbers as numbers,
    other text as written (the API says what is wrong with it)."""
    item: dict[str, Any] = {"target": row.get("target", "")}
    alias = row.get("alias") or row.get("code")
    if alias:
        item["alias"] = alias
    for name in ("title", "expires_at", "forward_query"):
        if row.get(name):
            item[name] = row[name]
    if row.get("tags"):
        item["tags"] = tag_list(row["tags"])
    for name in ("max_clicks", "redirect_type"):
        if row.get(name):
            item[name] = number(row[name])
    return item
