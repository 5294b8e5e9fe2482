"""Whole numbers from the URL: path ids and integer query parameters.

Python reads far more than ``0-9`` as a number. ``str.isdigit()`` is true for
``²``, which ``int()`` then refuses (that was a 500); ``int()`` takes other
scripts' digits (Arabic-Indic, fullwidth) and ``' 12'``, ``+5``, ``1_000``; and
pydantic, reading an int from text, takes ``' 12'``, ``+5``, ``1_000`` and
``12.0``. Every integer the API reads from a path or a query string is read
here instead: one to 19 ASCII digits, then its range."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError
from starlette.requests import Request

from shorty.web.problems import Problem

MAX_DIGITS = 19  # enough for any PostgreSQL bigint
DIGITS = re.compile(f"[0-9]{{1,{MAX_DIGITS}}}")
ID_MAX = 2**63 - 1  # the largest bigint: every id column is one
# What the OpenAPI document says of a path id.
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": ID_MAX}


def as_id(text: object) -> int | None:
    """``text`` as an id (1 to ID_MAX, ASCII digits only), or None."""
    if isinstance(text, str) and DIGITS.fullmatch(text) and 1 <= (value := int(text)) <= ID_MAX:
        return value
    return None


def path_id(request: Request, name: str) -> int:
    """The path parameter ``name`` as an id, or 404: what is no id names nothing."""
    text: str = request.path_params[name]
    value = as_id(text)
    if value is None:
        raise Problem(404, "not-found", "Not found", f"'{text}' is not an id.")
    return value


def _ascii_digits(value: object) -> object:
    # Query values are text; the field's own ge/le check the range afterwards.
    if isinstance(value, str) and not DIGITS.fullmatch(value):
        raise PydanticCustomError(
            "whole_number", f"must be a whole number: 1 to {MAX_DIGITS} digits 0-9"
        )
    return value


# An integer query parameter of a pydantic query model; give it ge/le with Field.
QueryInt = Annotated[int, BeforeValidator(_ascii_digits)]
