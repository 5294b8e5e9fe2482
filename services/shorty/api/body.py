"""Reading a JSON body: size limit, content type, syntax, then the model."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

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


def validate(data: object, model: type[M], field_prefix: str = "") -> M:
    """``data`` as ``model``, or a 422 Problem listing every field that is wrong."""
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
