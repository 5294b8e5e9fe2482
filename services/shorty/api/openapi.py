"""The OpenAPI 3.1 document, generated from the models that validate requests.

``api/app.py`` lists each route with its ``Operation``: the request body model,
the query model, and the model of each response. The document is built from
those models once, at start, so it cannot drift from what the handlers check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import Route

from shorty import __version__
from shorty.api.fields import CODE_SCHEMA, NulFreeSchema

REF = "#/components/schemas/{model}"
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "reason": {"type": "string"},
        "quota": {"type": "string", "description": "quota-exceeded: which quota"},
        "limit": {
            "type": "integer",
            "description": "quota-exceeded: the quota; bulk-too-large: the most items at once",
        },
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status"],
}
# Path parameters every route names alike (ids are given per operation).
PATH_SCHEMAS: dict[str, dict[str, Any]] = {"code": CODE_SCHEMA}
# What any authenticated route may answer besides its own responses.
COMMON = {401: "Missing, unknown or expired credentials", 429: "A rate limit was reached"}
BODY_ERRORS = {
    400: "The body is not JSON",
    413: "The body is too large",
    415: "The body is not sent as application/json",
}


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    # path parameter -> its JSON schema; one left out is a string
    path: dict[str, dict[str, Any]] = field(default_factory=dict)
    # status -> model, None (no body), or the media types of raw content ("a/b | c/d")
    responses: dict[int, type[BaseModel] | str | None] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    public: bool = False  # no credentials needed
    # Why a request this document allows may still be 422: the rules JSON Schema
    # cannot say (schemathesis.toml allows the 422 for exactly these operations).
    refused: tuple[str, ...] = ()


def document(routes: list[tuple[Route, Operation]]) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Any]] = []
    for _, op in routes:
        if op.body is not None:
            models.append((op.body, "validation"))
        models += [
            (model, "serialization")
            for model in op.responses.values()
            if isinstance(model, type) and issubclass(model, BaseModel)
        ]
    keys, defs = models_json_schema(
        list(dict.fromkeys(models)), ref_template=REF, schema_generator=NulFreeSchema
    )
    schemas = {**defs.get("$defs", {}), "Problem": PROBLEM_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for route, op in routes:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(route, op, keys)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shorty API",
            "version": __version__,
            "description": "Errors are application/problem+json (RFC 9457); see docs/api.md.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (shk_...) or an access token from /auth/login.",
                }
            },
        },
    }


def _operation(route: Route, op: Operation, keys: dict[Any, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": op.path.get(name, PATH_SCHEMAS.get(name, {"type": "string"})),
        }
        for name in route.param_convertors
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template=REF, schema_generator=NulFreeSchema)
        required = set(schema.get("required", []))
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": _present(prop)}
            for name, prop in schema["properties"].items()
        ]
    out: dict[str, Any] = {
        "summary": op.summary,
        "tags": [op.tag],
        "operationId": f"{route.name}",
        "responses": {},
    }
    if op.refused:
        reasons = "".join(f"\n- {reason}" for reason in op.refused)
        out["description"] = f"A request this document allows is still refused (422) when:{reasons}"
    if parameters:
        out["parameters"] = parameters
    if not op.public:
        out["security"] = [{"bearer": []}]
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": keys[(op.body, "validation")]}},
        }
    for status, model in op.responses.items():
        if model is None:
            out["responses"][str(status)] = {"description": "No content"}
        elif isinstance(model, str):
            out["responses"][str(status)] = {
                "description": "Content",
                "content": {kind: {"schema": {"type": "string"}} for kind in model.split(" | ")},
            }
        else:
            out["responses"][str(status)] = {
                "description": model.__doc__.strip().split("\n")[0] if model.__doc__ else "OK",
                "content": {"application/json": {"schema": keys[(model, "serialization")]}},
            }
    problems = {
        **({} if op.public else COMMON),
        422: "The request is not valid",
        **(BODY_ERRORS if op.body is not None else {}),
        **op.errors,
    }
    for status, description in problems.items():
        out["responses"].setdefault(
            str(status),
            {
                "description": description,
                "content": {
                    "application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}
                },
            },
        )
    return out


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the null of an optional model field: a query
    string cannot say null, a parameter left out is simply absent."""
    options = schema.get("anyOf")
    if not options:
        return schema
    present = [option for option in options if option.get("type") != "null"]
    rest = {key: value for key, value in schema.items() if key not in ("anyOf", "default")}
    if len(present) == 1:
        return {**rest, **present[0]}
    return {**rest, "anyOf": present}
