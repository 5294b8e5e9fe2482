"""``/livez`` (the process answers) and ``/readyz`` (PostgreSQL and Redis answer).

Both services mount these routes; ``readyz`` reads the pool, Redis and settings
from the service's dependencies (``shorty.bootstrap``), whichever they are."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

import asyncpg
import redis.asyncio as aredis
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shorty.bootstrap import DEPS
from shorty.settings import Settings


class Probed(Protocol):
    """What ``readyz`` needs of a service's dependencies."""

    @property
    def settings(self) -> Settings: ...
    @property
    def pool(self) -> asyncpg.Pool: ...
    @property
    def redis(self) -> aredis.Redis: ...


async def livez(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    deps: Probed = request.scope["state"][DEPS]
    seconds = deps.settings.db_timeout
    checks = dict(
        zip(
            ("postgres", "redis"),
            await asyncio.gather(
                _check(deps.pool.fetchval("SELECT 1"), seconds),
                _check(deps.redis.ping(), seconds),
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
