"""``Idempotency-Key`` for POSTs that create things (shorten, bulk)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from shorty.bootstrap import api_deps_of
from shorty.core.accounts import Principal
from shorty.store.joined import joining
from shorty.web.problems import Problem

Produce = Callable[[], Awaitable[tuple[int, Any, dict[str, str]]]]


async def idempotent(
    request: Request, principal: Principal, data: object, produce: Produce
) -> JSONResponse:
    """Run ``produce`` once per (user, route, Idempotency-Key); repeats get its answer."""
    key = request.headers.get("idempotency-key")
    if key is None:
        status, body, headers = await produce()
        return JSONResponse(body, status_code=status, headers=headers)
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise Problem(
            422,
            "validation-failed",
            "Invalid Idempotency-Key",
            "An Idempotency-Key is 1 to 255 printable characters.",
        )
    route = request.url.path
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    store = api_deps_of(request).idempotency
    # The key, the request's writes and its answer commit together: a failure (or a
    # process killed) keeps none of them, and the key is free for a retry.
    async with store.claiming(principal.user_id, route, key, digest) as claim:
        if claim.replay is not None:
            saved = claim.replay.body
            return JSONResponse(
                saved["body"],
                status_code=claim.replay.status,
                headers={**saved["headers"], "Idempotent-Replayed": "true"},
            )
        with joining(claim.conn) as joined:
            status, body, headers = await produce()
        await claim.keep(status, {"body": body, "headers": headers})
    # Committed: now the cache invalidations of the new codes (a lookup sooner would
    # find no link and remember the code as unknown).
    await joined.committed()
    return JSONResponse(body, status_code=status, headers=headers)
