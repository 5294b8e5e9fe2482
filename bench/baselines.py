"""The baselines the redirect service is measured against, on the same server settings.

Each is served by uvicorn exactly like the real service (uvloop, httptools, one
process, no access log). None of them validates codes, records clicks or logs:
they are the floor of what their stack can do.

- ``bare``: a raw ASGI callable answering 301, no framework
- ``starlette_dict``: a Starlette route looking the code up in a dict
- ``starlette_redis``: a Starlette route doing one Redis GET
- ``starlette_postgres``: a Starlette route doing one asyncpg SELECT
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis.asyncio as aredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

_LOCATION = [(b"location", b"https://example.com/"), (b"content-length", b"0")]


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 301, "headers": _LOCATION})
    await send({"type": "http.response.body", "body": b""})


def _redirect(target: str | None) -> Response:
    if target is None:
        return Response(status_code=404)
    return Response(status_code=302, headers={"Location": target})


def _codes_file() -> dict[str, str]:
    with open(os.environ["BENCH_CODES"]) as handle:
        return {line.strip(): f"https://example.com/{line.strip()}" for line in handle}


@asynccontextmanager
async def _dict_lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.links = _codes_file()
    yield


async def _dict_lookup(request: Request) -> Response:
    return _redirect(request.app.state.links.get(request.path_params["code"]))


starlette_dict = Starlette(routes=[Route("/{code}", _dict_lookup)], lifespan=_dict_lifespan)


@asynccontextmanager
async def _redis_lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.redis = aredis.Redis.from_url(os.environ["SHORTY_REDIS_URL"])
    yield
    await app.state.redis.aclose()


async def _redis_lookup(request: Request) -> Response:
    raw = await request.app.state.redis.get("bench:" + request.path_params["code"])
    return _redirect(raw.decode() if raw is not None else None)


starlette_redis = Starlette(routes=[Route("/{code}", _redis_lookup)], lifespan=_redis_lifespan)


@asynccontextmanager
async def _postgres_lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(
        os.environ["SHORTY_DATABASE_URL"], min_size=1, max_size=10
    )
    yield
    await app.state.pool.close()


async def _postgres_lookup(request: Request) -> Response:
    target = await request.app.state.pool.fetchval(
        "SELECT target FROM urls WHERE code = $1", request.path_params["code"]
    )
    return _redirect(target)


starlette_postgres = Starlette(
    routes=[Route("/{code}", _postgres_lookup)], lifespan=_postgres_lifespan
)
