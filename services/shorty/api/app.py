"""The API service: routes, middleware and lifespan in one place.

The lifespan opens the clients and yields the ``ApiDeps`` (``shorty.bootstrap``)
as lifespan state; handlers read them with ``api_deps_of(request)``."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from shorty.api import docs
from shorty.api.openapi import document
from shorty.api.problems import domain_problem
from shorty.api.routes import OPERATIONS, routing_table
from shorty.bootstrap import DEPS, ApiDeps, api_deps
from shorty.core.errors import DomainError
from shorty.obs import tracing
from shorty.obs.metrics import DEADLINE_EXCEEDED
from shorty.obs.requestlog import RequestLogMiddleware
from shorty.obs.serverspans import api_middleware
from shorty.ratelimit.asgi import RateLimitHeadersMiddleware
from shorty.resilience.deadline import DeadlineExceeded
from shorty.resilience.faults import bypassed
from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.store.bootstrap import provision_keys
from shorty.store.errors import UNAVAILABLE
from shorty.ui.app import create_ui
from shorty.web import health
from shorty.web.deadline import DeadlineMiddleware
from shorty.web.drain import Drain
from shorty.web.liveness import LoopWatchdog
from shorty.web.problems import MEDIA_TYPE, Problem
from shorty.web.shedding import ShedMiddleware, fixed_answer

log = logging.getLogger(__name__)
# Past SHORTY_MAX_IN_FLIGHT: answered at once, before routing, built once.
OVERLOADED = fixed_answer(
    MEDIA_TYPE.encode(),
    json.dumps(
        Problem(
            503,
            "overloaded",
            "Server overloaded",
            "Too many requests are in progress on this server; retry in a second.",
        ).body(),
        separators=(",", ":"),
    ).encode(),
)


# Past SHORTY_API_DEADLINE: the problem a wait that ran out raises into (DeadlineExceeded,
# answered by ``deadline_exceeded``) and the one the backstop sends itself.
RETRY_AFTER_DEADLINE = 5
_DEADLINE_PROBLEM = Problem(
    503,
    "deadline-exceeded",
    "Request took too long",
    "The request could not be completed within its deadline; retry in a few seconds.",
    headers={"Retry-After": str(RETRY_AFTER_DEADLINE)},
)
PAST_DEADLINE = fixed_answer(
    MEDIA_TYPE.encode(),
    json.dumps(_DEADLINE_PROBLEM.body(), separators=(",", ":")).encode(),
    retry_after=RETRY_AFTER_DEADLINE,
)
_EXCEEDED = DEADLINE_EXCEEDED.labels("api")


async def domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return domain_problem(exc).response(request.url.path)


async def problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response(request.url.path)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    slugs = {404: "not-found", 405: "method-not-allowed"}
    slug = slugs.get(exc.status_code, f"http-{exc.status_code}")
    title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
    detail = f"{request.method} {request.url.path} is not a route of this API."
    return Problem(exc.status_code, slug, title, detail, headers=exc.headers).response(
        request.url.path
    )


async def unavailable(request: Request, exc: Exception) -> Response:
    log.warning(
        "PostgreSQL unavailable on %s %s: %s", request.method, request.url.path, type(exc).__name__
    )
    return Problem(
        503,
        "service-unavailable",
        "Service temporarily unavailable",
        "The database cannot be reached; retry in a few seconds.",
        headers={"Retry-After": "5"},
    ).response(request.url.path)


async def deadline_exceeded(request: Request, exc: Exception) -> Response:
    # Before ``unavailable``: a DeadlineExceeded is a TimeoutError, one of UNAVAILABLE.
    assert isinstance(exc, DeadlineExceeded)
    _EXCEEDED.inc()
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return _DEADLINE_PROBLEM.response(request.url.path)


async def _to_ui(request: Request) -> Response:
    return RedirectResponse("/ui/", status_code=308)


def create_app(
    settings: Settings,
    *,
    provision: bool = True,
    watchdog: LoopWatchdog | None = None,
    drain: Drain | None = None,
) -> Starlette:
    """The API. With ``provision`` its start makes SHORTY_INITIAL_API_KEY an admin key
    and SHORTY_OPERATOR_API_KEY the operator's (`shorty serve api` does that itself
    first, to stop with one line if refused).
    ``watchdog`` judges its event loop for ``/livez`` (`shorty serve` shares it with
    the metrics listener, which answers ``/livez`` off the loop); ``drain`` turns
    ``/readyz`` to 503 once a SIGTERM arrives (`shorty serve`'s server sets it)."""

    openapi = document(OPERATIONS)
    watchdog = watchdog or LoopWatchdog(settings.liveness_max_lag)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, ApiDeps]]:
        async with watchdog.watching(), open_resources(settings) as resources:
            if provision:
                # Past any fault-injection experiment: an API restarted during an
                # injected PostgreSQL outage must start, not crash-loop until it ends.
                with bypassed():
                    await provision_keys(resources.pool, settings)
            deps = api_deps(settings, resources, openapi=openapi)
            try:
                yield {DEPS: deps}
            finally:
                await deps.live.close()

    handlers = {
        DomainError: domain_error,
        Problem: problem,
        HTTPException: http_error,
        **dict.fromkeys(UNAVAILABLE, unavailable),
        DeadlineExceeded: deadline_exceeded,
    }
    # The web app calls the API's routes in-process, past the middleware its own
    # request went through already (shorty.ui.client).
    api_routes = routing_table(OPERATIONS)
    ui = create_ui(Starlette(routes=api_routes, exception_handlers=handlers))
    routes = [
        # Ready without Redis too: it serves without it.
        *health.routes(serves_with=[health.POSTGRES], watchdog=watchdog, drain=drain),
        Route("/api/v1/openapi.json", docs.openapi_json, methods=["GET"]),
        Route("/api/docs", docs.docs_page, methods=["GET"]),
        *api_routes,
        Route("/ui", _to_ui, methods=["GET"]),
        Mount("/ui", app=ui),
    ]
    middleware = [
        # Outermost: a shed request costs no log line, no routing (probes never count).
        *(
            [
                Middleware(
                    ShedMiddleware,
                    service="api",
                    limit=settings.max_in_flight,
                    answer=OVERLOADED,
                    skip_paths=health.PROBE_PATHS,
                )
            ]
            if settings.max_in_flight
            else []
        ),
        # The request's span (continuing a caller's traceparent): current while it is
        # logged and while its outbox events are written (they carry it).
        api_middleware(tracing.current()),
        Middleware(
            RequestLogMiddleware,
            service="api",
            skip_paths=health.PROBE_PATHS,
            access_log=settings.access_log,
            sample=settings.access_log_sample,
            slow=settings.access_log_slow,
        ),
        # The budget starts once the request is let in and logged; its 503 is logged too.
        Middleware(
            DeadlineMiddleware,
            service="api",
            seconds=settings.api_deadline,
            answer=PAST_DEADLINE,
            skip_paths=health.PROBE_PATHS,
        ),
        Middleware(RateLimitHeadersMiddleware),
    ]
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=lifespan,
    )
