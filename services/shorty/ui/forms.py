"""Forms: read within bounds, turned into the API's JSON, and its refusals shown
next to the fields they name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.types import Message

from shorty.web.problems import Problem

FORM_BYTES = 64 * 1024  # a form of text fields
FORM_FIELDS = 200  # a page's ticked boxes (the dead letters: 50 a page) with its fields
UPLOAD_BYTES = 2 * 1024 * 1024  # a CSV file with its form

# Problems of the API that are about one field, by the field (a validation
# problem names its fields itself).
_FIELD_OF = {
    "invalid-target": "target",
    "invalid-alias": "alias",
    "alias-taken": "alias",
    "invalid-expiry": "expires_at",
    "invalid-tag": "tags",
    "invalid-redirect-type": "redirect_type",
}


@dataclass(frozen=True, slots=True)
class Form:
    """A POSTed form, read whole: its text fields and its files' contents."""

    fields: dict[str, list[str]]  # every value of a name, in order
    files: dict[str, bytes]

    def text(self, name: str) -> str:
        """A text field, stripped ("" when absent)."""
        return self.raw(name).strip()

    def raw(self, name: str) -> str:
        """A text field as typed (a password: its spaces are part of it); the last
        one of the name."""
        return self.fields.get(name, [""])[-1]

    def every(self, name: str) -> list[str]:
        """Every value of a name (the ticked boxes of a group)."""
        return self.fields.get(name, [])


async def read_form(request: Request, max_bytes: int = FORM_BYTES, *, files: int = 0) -> Form:
    """The POSTed form, at most ``max_bytes`` and ``files`` files; 413 past that."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise Problem(413, "body-too-large", "Form too large", f"At most {max_bytes} bytes.")
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}

    async with Request(request.scope, replay).form(
        max_files=files, max_fields=FORM_FIELDS, max_part_size=max_bytes
    ) as form:
        fields: dict[str, list[str]] = {}
        for name, value in form.multi_items():
            if isinstance(value, str):
                fields.setdefault(name, []).append(value)
        uploads = {
            name: await value.read()
            for name, value in form.multi_items()
            if isinstance(value, UploadFile)
        }
    return Form(fields, uploads)


def number(value: str) -> int | str | None:
    """A whole number as an int; other text as typed (the API says what is wrong
    with it); "" as None."""
    if not value:
        return None
    return int(value) if value.isascii() and value.isdigit() and len(value) < 19 else value


_MINUTES = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def utc_time(value: str) -> str | None:
    """A date-time field (``datetime-local``: no zone) read as UTC, in RFC 3339."""
    if not value:
        return None
    if _MINUTES.fullmatch(value):
        return value + ":00Z"
    if _SECONDS.fullmatch(value):
        return value + "Z"
    return value


def tag_list(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def errors_of(problem: dict[str, Any], fields: Iterable[str]) -> tuple[dict[str, str], str]:
    """The messages of the API's ``problem``: by form field where it names one of
    ``fields``, and the rest as one message for the whole form."""
    known = set(fields)
    by_field: dict[str, str] = {}
    rest: list[str] = []
    for error in problem.get("errors") or ():
        where = str(error.get("field", "")).split(".", 1)[0]
        message = str(error.get("message", ""))
        if where in known:
            by_field.setdefault(where, message)
        else:
            rest.append(f"{where}: {message}" if where else message)
    slug = str(problem.get("type", "")).rsplit("/", 1)[-1]
    detail = str(problem.get("detail") or problem.get("title") or "")
    if not problem.get("errors"):
        if _FIELD_OF.get(slug) in known:
            by_field[_FIELD_OF[slug]] = detail
        elif detail:
            rest.append(detail)
    return by_field, " ".join(rest)
