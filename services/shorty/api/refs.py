"""Links declared by reference (``/refs?ref=``): the operator's ShortLinks.

``PUT`` makes the link declared under the reference hold the body: created
(201) when there is none, else changed only where it differs (200). The rules
(ownership, a code that never changes, what differs) are the use case's
(``shorty.usecases.links.declare``). Declarations belong to the key's account,
an admin's too: ``GET``, ``PUT`` and ``DELETE`` of a reference see only the
caller's own links (admins reach any link through ``/urls/{code}``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import read_json, validate
from shorty.api.schemas import DeclaredLink, DeclareRequest, RefQuery
from shorty.bootstrap import api_deps_of
from shorty.core.links import Outcome
from shorty.usecases import links


def _ref(request: Request) -> str:
    return validate(dict(request.query_params), RefQuery).ref


async def put_declared(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    ref = _ref(request)
    deps = api_deps_of(request)
    body = await read_json(request, DeclareRequest, deps.settings.max_body_bytes)
    fields = body.model_dump(exclude={"alias"})
    link, outcome = await links.declare(deps, principal, ref, fields, body.alias)
    out = DeclaredLink.of(link, deps.settings.public_base).model_dump(mode="json")
    return JSONResponse(out, status_code=201 if outcome is Outcome.CREATED else 200)


async def get_declared(request: Request) -> Response:
    principal = await authenticate(request, "urls:read")
    ref = _ref(request)
    deps = api_deps_of(request)
    link = await links.find_declared(deps, principal, ref)
    return JSONResponse(DeclaredLink.of(link, deps.settings.public_base).model_dump(mode="json"))


async def delete_declared(request: Request) -> Response:
    principal = await authenticate(request, "urls:write")
    ref = _ref(request)
    await links.delete_declared(api_deps_of(request), principal, ref)
    return Response(status_code=204)
