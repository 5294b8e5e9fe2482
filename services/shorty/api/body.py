"""Reading a JSON body: size limit, content type, syntax, then the model."""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from shorty.api.fields import not_null
from shorty.web.problems import Problem

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, model: type[M], max_bytes: int) -> M:
    """Parse the body as ``model`` or raise the Problem that says what is wrong."""
    return validate(parse_json(await read_body(request, max_bytes)), model)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The raw body, if its media type is JSON and it is no larger than ``max_bytes``."""
    content_type = request.headers.get("content-type", "application/json")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise Problem(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as application/json (got {media_type or 'nothing'}).",
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise Problem(
                413,
                "body-too-large",
                "Request body too large",
                f"The body may be at most {max_bytes} bytes.",
            )
    return bytes(body)


def parse_json(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400, "malformed-json", "Malformed JSON", f"The body is not valid JSON: {exc}."
        ) from None
    except RecursionError:
        raise Problem(
            400, "malformed-json", "Malformed JSON", "The body is nested too deeply."
        ) from None


def validate(data: object, model: type[M], field_prefix: str = "", *, nul_check: bool = True) -> M:
    """``data`` as ``model``, or a 422 Problem listing every field that is wrong.
    A NUL character is refused in any text (PostgreSQL cannot store it), unless the
    caller checks the parts on their own (``nul_check=False``)."""
    bad = [field_prefix + where for where in _unstorable(data, "")] if nul_check else []
    if bad:
        raise Problem(
            422,
            "validation-failed",
            "The request is not valid",
            f"{', '.join(bad)}: {_UNSTORABLE_TEXT}",
            errors=[{"field": where, "message": _UNSTORABLE_TEXT} for where in bad],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {
                "field": field_prefix + (".".join(str(p) for p in error["loc"]) or "(body)"),
                "message": error["msg"],
            }
            for error in exc.errors(include_input=False, include_url=False)
        ]
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        raise Problem(
            422, "validation-failed", "The request is not valid", summary, errors=errors
        ) from None


# NUL, which PostgreSQL cannot store, and lone surrogates (JSON's "\\ud800"), which
# no UTF-8 text can carry: refused in every string of a request, keys included.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_UNSTORABLE_TEXT = "must not contain NUL characters or lone surrogates"


def _unstorable(data: object, where: str) -> list[str]:
    """The dotted paths of strings (keys included) in ``data`` that hold a NUL or a
    lone surrogate; a path shows such characters escaped. A loop, not recursion: a
    body nested as deep as the JSON parser allows must not overflow the stack."""
    found: list[str] = []
    pending: list[tuple[object, str]] = [(data, where)]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                found.append(path or "(body)")
        elif isinstance(item, dict):
            for key, value in item.items():
                name = _UNSTORABLE.sub(lambda m: ascii(m.group())[1:-1], str(key))
                inner = f"{path}.{name}" if path else name
                if isinstance(key, str) and _UNSTORABLE.search(key):
                    found.append(inner)
                pending.append((value, inner))
        elif isinstance(item, list):
            pending += [(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(item)]
    return sorted(found)


def changes_of(body: BaseModel) -> dict[str, object]:
    """The fields a PATCH body sent, by name: 422 when none was sent, or when a field
    that may be left out but never cleared (``fields.optional()``) was sent as null."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if not changes:
        raise Problem(422, "validation-failed", "Nothing to change", "Send at least one field.")
    nulled = sorted(
        name
        for name, field in type(body).model_fields.items()
        if field.json_schema_extra is not_null and name in changes and changes[name] is None
    )
    if nulled:
        raise Problem(
            422,
            "validation-failed",
            "The request is not valid",
            f"{', '.join(nulled)} cannot be null.",
            errors=[{"field": name, "message": "cannot be null"} for name in nulled],
        )
    return changes
