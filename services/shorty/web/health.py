"""``/livez`` (the process answers) and ``/readyz`` ("send me traffic").

Readiness is whether the service can serve, not whether everything it uses is up:
a Kubernetes Service takes an unready pod out of rotation, and a dependency every
replica shares (Redis) would otherwise take out all of them at once. Each app
says which dependencies it can serve with (``routes(serves_with=...)``): the
redirect service with PostgreSQL or Redis, the API only with PostgreSQL.
From a SIGTERM on, ``/readyz`` answers 503 ``{"status": "draining"}`` while the
process still serves everything else for ``SHORTY_DRAIN_DELAY`` (``shorty.web.drain``).
``/readyz`` checks PostgreSQL and Redis together, each within
``SHORTY_READY_TIMEOUT``, so it answers in about that time even while one hangs;
its body names each one's state, and the state of the process's circuit breaker
for each (``closed``, ``open``, ``half-open``: what the service's own calls met
lately, which does not change what ready means):

    {"status": "ready", "checks": {"postgres": "up", "redis": "down"},
     "errors": {"redis": "ConnectionError"},
     "breakers": {"postgres": "closed", "redis": "open"}}

``/livez`` never looks at a dependency: restarting a process does not bring its
database back. It is 503 only when the process's event loop lags behind its
heartbeat past ``SHORTY_LIVENESS_MAX_LAG`` (``shorty.web.liveness``); the metrics
listener answers the same verdict from its own thread, which still answers while
the loop is stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import asyncpg
import redis.asyncio as aredis
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shorty.bootstrap import DEPS
from shorty.resilience.breaker import Breaker
from shorty.resilience.faults import bypassed
from shorty.settings import Settings
from shorty.web.drain import Drain
from shorty.web.liveness import LoopWatchdog

POSTGRES, REDIS = "postgres", "redis"
PROBE_PATHS = frozenset({"/livez", "/readyz"})
_NO_STORE = {"Cache-Control": "no-store"}


class Probed(Protocol):
    """What ``/readyz`` needs of a service's dependencies (``shorty.bootstrap``)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def pool(self) -> asyncpg.Pool: ...
    @property
    def redis(self) -> aredis.Redis: ...
    @property
    def breakers(self) -> tuple[Breaker, ...]: ...


def routes(
    *, serves_with: Sequence[str], watchdog: LoopWatchdog, drain: Drain | None = None
) -> list[Route]:
    """``/livez`` (``watchdog``'s verdict on the event loop) and ``/readyz`` for a
    service that is ready while any of ``serves_with`` (``POSTGRES``, ``REDIS``)
    answers, and not once ``drain`` (``shorty.web.drain``) says it is stopping."""
    drain = drain or Drain()
    needed = frozenset(serves_with)
    if not needed or not needed <= {POSTGRES, REDIS}:
        raise ValueError(f"serves_with names no known dependency: {sorted(needed)}")

    async def readyz(request: Request) -> JSONResponse:
        if drain.draining:  # stopping: no more traffic, whatever the dependencies say
            return JSONResponse({"status": "draining"}, status_code=503, headers=_NO_STORE)
        deps: Probed = request.scope["state"][DEPS]
        errors = await _probe(deps)
        ready = any(name not in errors for name in needed)
        body: dict[str, object] = {
            "status": "ready" if ready else "unavailable",
            "checks": {name: "down" if name in errors else "up" for name in (POSTGRES, REDIS)},
        }
        if errors:
            body["errors"] = errors
        body["breakers"] = {breaker.dependency: breaker.state for breaker in deps.breakers}
        return JSONResponse(body, status_code=200 if ready else 503, headers=_NO_STORE)

    async def livez(request: Request) -> Response:
        status, body = watchdog.answer()
        return Response(body, status, headers=_NO_STORE, media_type="application/json")

    return [Route("/livez", livez), Route("/readyz", readyz)]


async def _probe(deps: Probed) -> dict[str, str]:
    """The failed checks, by dependency: the name of what each one raised."""
    seconds = deps.settings.ready_timeout
    with bypassed():  # the real servers: a fault-injection experiment never drains a pod
        results = await asyncio.gather(
            _check(lambda: _select_one(deps.pool), seconds),
            _check(deps.redis.ping, seconds),
        )
    return {name: error for name, error in zip((POSTGRES, REDIS), results, strict=True) if error}


async def _check(probe: Callable[[], Awaitable[object]], seconds: float) -> str | None:
    try:
        async with asyncio.timeout(seconds):
            await probe()
    except Exception as exc:
        return type(exc).__name__
    return None


async def _select_one(pool: asyncpg.Pool) -> None:
    """``SELECT 1`` on a pooled connection. One that did not answer is closed at
    once rather than given back: giving it back waits for PostgreSQL to confirm the
    cancelled query, which a hung server never does, so the probe would hang.
    The check asks PostgreSQL itself: asyncpg's own acquire, past the breaker
    (``store/db.py``), whose state is reported beside it."""
    conn = await asyncpg.Pool.acquire(pool)
    try:
        await conn.fetchval("SELECT 1")
    except BaseException:
        conn.terminate()
        raise
    finally:
        await pool.release(conn)
