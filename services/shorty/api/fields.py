"""The kinds of value the API takes, each said once: what it accepts, and how the
OpenAPI document describes that.

The document must say every rule JSON Schema can say, and no rule the server
does not keep: a request the schema allows is refused only for a reason a
schema cannot express (schemathesis.toml lists them, per operation). Where a
rule is checked by the domain (a target's scheme, an alias's characters) the
field declares it with ``json_schema_extra`` and the domain's richer error
stays; where pydantic can check it, pydantic does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BeforeValidator, Field
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from shorty.core.accounts import EMAIL_PATTERN, KEY_NAME_MAX, PASSWORD_MIN
from shorty.core.codes import ALIAS_MAX, ALIAS_MIN
from shorty.core.links import TAG_MAX, ForwardMode
from shorty.core.targets import MAX_LENGTH

# Text PostgreSQL can store: api/body.py refuses a NUL anywhere, and every string
# of a request without a pattern of its own says so (NulFreeSchema).
NUL_FREE = "^[^\\u0000]*$"


class NulFreeSchema(GenerateJsonSchema):
    """JSON Schema generation for requests: a free-text string says it holds no NUL."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        out = super().str_schema(schema)
        if self.mode == "validation" and "pattern" not in out and "format" not in out:
            out["pattern"] = NUL_FREE
        return out


def not_null(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` of an optional field that may be left out but not sent as
    null: ``api/body.py`` ``changes_of`` refuses it."""
    alternatives = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(alternatives) == 1:
        schema.update(alternatives[0])
    elif alternatives:
        schema["anyOf"] = alternatives
    schema.pop("default", None)


# RFC 3339 date-times, years 2000 to 2999, with a zone. Pydantic alone would take
# epoch seconds ("1700000000"), a space for the T, and a missing zone.
_RFC3339 = re.compile(
    r"2[0-9]{3}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
RFC3339_PATTERN = f"^{_RFC3339.pattern}$"


def _rfc3339(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError(
            "rfc3339",
            "must be an RFC 3339 date-time with a time zone from the year 2000 to 2999,"
            " e.g. 2030-01-01T00:00:00Z",
        )
    try:
        # fromisoformat takes at most 6 fraction digits; more say nothing a link needs.
        text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", value.upper())
        return datetime.fromisoformat(text)
    except ValueError:
        raise PydanticCustomError("rfc3339", "is not a date and time that exists") from None


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    Field(json_schema_extra={"pattern": RFC3339_PATTERN}),
]


def _query_bool(value: object) -> object:
    if isinstance(value, str) and value not in ("true", "false"):
        raise PydanticCustomError("query_bool", "must be true or false")
    return value == "true" if isinstance(value, str) else value


QueryBool = Annotated[bool, BeforeValidator(_query_bool)]

# A link's fields as the API takes them: one set of rules for create, PATCH and declare.
# The domain checks target and alias (with its own reasons); pydantic's limits only
# keep absurd input out before it gets there.
TargetText = Annotated[
    str,
    Field(
        max_length=8192,
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_LENGTH,
            "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\u0000]*$",
        },
    ),
]
AliasText = Annotated[
    str,
    Field(
        max_length=256,
        json_schema_extra={
            "minLength": ALIAS_MIN,
            "maxLength": ALIAS_MAX,
            "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]*$",
        },
    ),
]
TitleText = Annotated[str, Field(max_length=500)]
TagText = Annotated[str, Field(min_length=1, max_length=TAG_MAX)]
TagList = Annotated[list[TagText], Field(max_length=100)]
ClickLimit = Annotated[int, Field(ge=1, le=2_000_000_000, strict=True)]
RedirectType = Literal[301, 302, 307, 308]  # a Literal takes 301.0 as 301: harmless
Flag = Annotated[bool, Field(strict=True)]
ForwardQuery = Annotated[
    ForwardMode,
    Field(
        description="The visitor's query string: not forwarded; added where the target"
        " lacks a parameter (utm_* always the visitor's); or the visitor's values win."
    ),
]
NoteText = Annotated[str, Field(max_length=500)]

# The code of a link in a path (core/codes.py is_well_formed): anything else is 404.
CODE_SCHEMA: dict[str, Any] = {"type": "string", "pattern": "^[A-Za-z0-9_-]{3,64}$"}

# Accounts. The email rule is core/accounts.py's, white space around it allowed
# (the address is trimmed).
EmailText = Annotated[str, Field(max_length=254, json_schema_extra={"pattern": EMAIL_PATTERN})]
PasswordText = Annotated[str, Field(max_length=1024, json_schema_extra={"minLength": PASSWORD_MIN})]
KeyNameText = Annotated[str, Field(max_length=KEY_NAME_MAX)]
# API input is stricter than SHORTY_LIMIT_*: lower case, no spaces, "off" for none.
RATE_LIMIT_PATTERN = (
    "^(off|[1-9][0-9]{0,8}/([1-9][0-9]{0,5})?(s|sec|second|m|min|minute|h|hour|d|day))$"
)
RateLimitText = Annotated[str, Field(max_length=32, pattern=RATE_LIMIT_PATTERN)]


def optional(description: str | None = None) -> Any:
    """An optional field that is never null (see ``not_null``)."""
    extra: Callable[[dict[str, Any]], None] = not_null
    return Field(None, description=description, json_schema_extra=extra)
