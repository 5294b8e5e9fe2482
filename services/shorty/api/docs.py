"""``/api/v1/openapi.json`` and a readable page of it at ``/api/docs``.

The page is rendered here from the document itself: no script, no CDN.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from shorty.bootstrap import api_deps_of

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{margin-top:2rem;border-bottom:1px solid #ddd}
.op{margin:1rem 0;padding:.5rem 1rem;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;min-width:4.5rem;font-weight:bold}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:3px}
pre{padding:.5rem;overflow:auto;font-size:13px}
td,th{text-align:left;padding:.1rem .6rem .1rem 0;vertical-align:top}
"""


async def openapi_json(request: Request) -> JSONResponse:
    return JSONResponse(api_deps_of(request).openapi)


async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(render(api_deps_of(request).openapi))


def render(doc: dict[str, Any]) -> str:
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(doc['info']['title'])}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{escape(doc['info']['title'])} {escape(doc['info']['version'])}</h1>",
        f"<p>{escape(doc['info'].get('description', ''))} The machine-readable document: "
        "<a href='/api/v1/openapi.json'>/api/v1/openapi.json</a> (OpenAPI 3.1).</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append((path, method, op))
    for tag, ops in by_tag.items():
        parts.append(f"<h2>{escape(tag)}</h2>")
        for path, method, op in ops:
            parts.append(_operation(path, method, op))
    parts.append("<h2>schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(
            f"<h3 id='{escape(name)}'>{escape(name)}</h3>"
            # Focusable: a keyboard scrolls a schema wider than the page too.
            f"<pre tabindex='0' aria-labelledby='{escape(name)}'>"
            f"{escape(json.dumps(schema, indent=2))}</pre>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    lines = [
        f"<div class=op><span class=m>{method.upper()}</span><code>{escape(path)}</code>"
        f" — {escape(op['summary'])}" + ("" if "security" in op else " <em>(no credentials)</em>")
    ]
    if op.get("parameters"):
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{p['in']}</td>"
            f"<td>{'required' if p.get('required') else ''}</td></tr>"
            for p in op["parameters"]
        )
        lines.append(f"<table>{rows}</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        lines.append(f"<p>Body: {_schema_link(body['schema'])}</p>")
    answers = []
    for status, response in op["responses"].items():
        content = response.get("content", {})
        shown = ", ".join(
            _schema_link(c["schema"]) if "$ref" in c.get("schema", {}) else escape(media)
            for media, c in content.items()
        )
        answers.append(f"<code>{status}</code> {escape(response['description'])} {shown}")
    lines.append("<p>" + "<br>".join(answers) + "</p></div>")
    return "".join(lines)


def _schema_link(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    return f"<a href='#{escape(name)}'>{escape(name)}</a>" if name else "JSON"
