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
    replay = await store.claim(principal.user_id, route, key, digest)
    if replay is not None:
        saved = replay.body
        return JSONResponse(
            saved["body"],
            status_code=replay.status,
            headers={**saved["headers"], "Idempotent-Replayed": "true"},
        )
    try:
        status, body, headers = await produce()
    except BaseException:
        # No answer to keep: the key is free again for a corrected retry.
        await store.release(principal.user_id, route, key)
        raise
    await store.store(principal.user_id, route, key, status, {"body": body, "headers": headers})
    return JSONResponse(body, status_code=status, headers=headers)
