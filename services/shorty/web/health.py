"""``/livez`` (the process answers) and ``/readyz`` (PostgreSQL and Redis answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    seconds = state.settings.db_timeout
    checks = dict(
        zip(
            ("postgres", "redis"),
            await asyncio.gather(
                _check(state.pool.fetchval("SELECT 1"), seconds),
                _check(state.redis.ping(), seconds),
            ),
            strict=True,
        )
    )
    ready = all(result == "ok" for result in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )


async def _check(probe: Awaitable[object], seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await probe
    except Exception as exc:
        return f"failed: {type(exc).__name__}"
    return "ok"


routes = [Route("/livez", livez), Route("/readyz", readyz)]
PROBE_PATHS = frozenset({"/livez", "/readyz"})
