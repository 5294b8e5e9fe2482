"""The API service: routes, middleware and lifespan in one place."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shorty.api import docs
from shorty.api.openapi import document
from shorty.api.problems import domain_problem
from shorty.api.routes import OPERATIONS, routing_table
from shorty.api.tokens import AccessTokens
from shorty.cache.links import LinkCache
from shorty.core.errors import DomainError
from shorty.obs.requestlog import RequestLogMiddleware
from shorty.ratelimit.asgi import RateLimitHeadersMiddleware
from shorty.ratelimit.limiter import Limiter
from shorty.ratelimit.redis import RedisLimits
from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.store.bootstrap import ensure_initial_api_key
from shorty.store.errors import UNAVAILABLE
from shorty.store.idempotency import IdempotencyStore
from shorty.store.keys import KeyStore
from shorty.store.links import LinkStore
from shorty.store.sessions import SessionStore
from shorty.store.stats import StatsStore
from shorty.store.users import UserStore
from shorty.web import health
from shorty.web.problems import Problem

log = logging.getLogger(__name__)


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


def create_app(settings: Settings, *, provision: bool = True) -> Starlette:
    """The API. With ``provision`` its start makes SHORTY_INITIAL_API_KEY an admin key
    (`shorty serve api` does that itself first, to stop with one line if refused)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            if provision and settings.initial_api_key is not None:
                await ensure_initial_api_key(
                    resources.pool,
                    settings.initial_api_key.get_secret_value(),
                    settings.initial_admin_email,
                )
            app.state.settings = settings
            app.state.pool = resources.pool
            app.state.redis = resources.redis
            app.state.links = LinkStore(resources.pool, settings.code_length)
            app.state.keys = KeyStore(resources.pool, max_live=settings.max_keys_per_user)
            app.state.users = UserStore(resources.pool)
            app.state.stats = StatsStore(resources.pool)
            app.state.idempotency = IdempotencyStore(resources.pool)
            app.state.sessions = SessionStore(
                resources.pool, timedelta(seconds=settings.refresh_token_ttl)
            )
            app.state.tokens = AccessTokens(_jwt_secret(settings), settings.access_token_ttl)
            app.state.openapi = document(OPERATIONS)
            app.state.limiter = Limiter(
                RedisLimits(resources.redis, settings.ratelimit_algorithm),
                replicas=settings.api_replicas,
            )
            app.state.cache = LinkCache(resources.redis, settings.cache_ttl, settings.negative_ttl)
            yield

    routes = [
        *health.routes,
        Route("/api/v1/openapi.json", docs.openapi_json, methods=["GET"]),
        Route("/api/docs", docs.docs_page, methods=["GET"]),
        *routing_table(OPERATIONS),
    ]
    middleware = [
        Middleware(
            RequestLogMiddleware,
            service="api",
            skip_paths=health.PROBE_PATHS,
            access_log=settings.access_log,
            trace=True,
        ),
        Middleware(RateLimitHeadersMiddleware),
    ]
    handlers = {
        DomainError: domain_error,
        Problem: problem,
        HTTPException: http_error,
        **dict.fromkeys(UNAVAILABLE, unavailable),
    }
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers=handlers,
        lifespan=lifespan,
    )


def _jwt_secret(settings: Settings) -> bytes:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    log.warning("SHORTY_JWT_SECRET is not set: access tokens work only on this replica")
    return os.urandom(32)
