"""The redirect service: ``GET|HEAD /{code}`` and nothing it does not need."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shorty.cache.links import LinkCache
from shorty.core.codes import is_well_formed
from shorty.core.links import LinkState
from shorty.obs.requestlog import RequestLogMiddleware
from shorty.redirect.clicks import ClickRecorder
from shorty.redirect.pages import not_redirecting
from shorty.redirect.resolve import Resolver
from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.store.errors import UNAVAILABLE
from shorty.web import health

log = logging.getLogger(__name__)


async def follow(request: Request) -> Response:
    code = request.path_params["code"]
    if not is_well_formed(code):
        return not_redirecting(request, 404)
    state = request.app.state
    try:
        link = await state.resolver.resolve(code)
    except UNAVAILABLE:
        log.warning("lookup of %s failed: PostgreSQL unavailable", code)
        return not_redirecting(request, 503)
    if link is None:
        return not_redirecting(request, 404)
    if link.state_at(datetime.now(UTC)) is not LinkState.ACTIVE:
        return not_redirecting(request, 410)
    # 301/308 may be cached by browsers; a 302/307 must not be, or clicks go unseen.
    cache_control = "public, max-age=3600" if link.redirect_type in (301, 308) else "no-store"
    # HEAD is what link-preview fetchers send: it is answered but not counted.
    record = request.method == "GET"
    return Response(
        status_code=link.redirect_type,
        headers={"Location": link.target, "Cache-Control": cache_control},
        background=BackgroundTask(state.clicks.record, code, request.headers) if record else None,
    )


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return not_redirecting(request, 404)


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            app.state.settings = settings
            app.state.pool = resources.pool
            app.state.redis = resources.redis
            app.state.resolver = Resolver(
                resources.pool, LinkCache(resources.redis, settings.cache_ttl)
            )
            app.state.clicks = ClickRecorder(resources.redis)
            yield

    routes = [*health.routes, Route("/{code}", follow, methods=["GET", "HEAD"])]
    middleware = [Middleware(RequestLogMiddleware, skip_paths=health.PROBE_PATHS)]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # "/abc/" is not "/abc": it never reaches storage
    return app
