"""The redirect service: ``GET|HEAD /{code}`` and nothing it does not need.

The whole life of a redirect is here and in ``resolve.py``: check the code,
(optionally) the client's rate, look the link up through the tiers, check its
state and click limit, answer, and leave the click in the buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shorty.cache.guard import RedisGuard
from shorty.cache.invalidation import listen
from shorty.cache.links import LinkCache
from shorty.core.codes import is_well_formed
from shorty.core.links import LinkState
from shorty.core.targets import merge_query
from shorty.obs.metrics import RATE_LIMITED, metrics
from shorty.obs.requestlog import RequestLogMiddleware
from shorty.ratelimit.local import TokenBuckets
from shorty.redirect.clickbuffer import ClickBuffer
from shorty.redirect.clicks import click_fields
from shorty.redirect.limits import ClickLimits
from shorty.redirect.pages import not_redirecting
from shorty.redirect.resolve import Resolver
from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.store.errors import UNAVAILABLE
from shorty.web import health
from shorty.web.clientip import client_ip

log = logging.getLogger(__name__)
RETRY_AFTER_UNAVAILABLE = 5


async def follow(request: Request) -> Response:
    code = request.path_params["code"]
    if not is_well_formed(code):
        return not_redirecting(request, 404)
    state = request.app.state
    ip = client_ip(request.scope, state.settings.trusted_proxies)
    if state.buckets is not None:
        wait = state.buckets.take(ip)
        if wait:
            RATE_LIMITED.labels("redirect").inc()
            return not_redirecting(request, 429, retry_after=math.ceil(wait))
    now = time.time()
    spend = request.method == "GET"  # HEAD is what link previews send: answered, not counted
    try:
        link = await state.resolver.resolve(code)
        if link is None:
            return not_redirecting(request, 404)
        if link.state_at_timestamp(now) is not LinkState.ACTIVE:
            return not_redirecting(request, 410)
        if link.max_clicks is not None and not await state.limits.allow(
            code, link.max_clicks, spend=spend
        ):
            return not_redirecting(request, 410)
    except UNAVAILABLE:
        log.warning("lookup of %s failed: PostgreSQL unavailable", code)
        return not_redirecting(request, 503, retry_after=RETRY_AFTER_UNAVAILABLE)
    query = request.url.query
    location = merge_query(link.target, query) if link.forward_query and query else link.target
    if spend:
        fields = click_fields(code, link.id, request.headers, ip, int(now * 1000), state.secret)
        state.clicks.add(fields)
    # A 301/308 may be cached by browsers; a 302/307 must not be, or its clicks go unseen.
    cache_control = "public, max-age=3600" if link.redirect_type in (301, 308) else "no-store"
    return Response(
        status_code=link.redirect_type,
        headers={"Location": location, "Cache-Control": cache_control},
    )


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return not_redirecting(request, 404)


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_resources(settings) as resources:
            guard = RedisGuard(settings.redis_backoff)
            cache = LinkCache(resources.redis, settings.cache_ttl, settings.negative_ttl)
            resolver = Resolver(
                resources.pool,
                cache,
                guard,
                lru_size=settings.lru_size,
                lru_ttl=settings.lru_ttl,
                negative_ttl=settings.negative_ttl,
                db_timeout=settings.db_timeout,
            )
            clicks = ClickBuffer(
                resources.redis,
                capacity=settings.click_buffer,
                batch=settings.click_batch,
                interval=settings.click_flush_interval,
            )
            app.state.settings = settings
            app.state.pool = resources.pool
            app.state.redis = resources.redis
            app.state.resolver = resolver
            app.state.limits = ClickLimits(
                resources.pool, resources.redis, guard, settings.db_timeout
            )
            app.state.clicks = clicks
            app.state.buckets = (
                TokenBuckets(settings.redirect_rate, settings.redirect_burst)
                if settings.redirect_rate > 0
                else None
            )
            app.state.secret = _secret(settings)
            clicks.start()
            subscribed = asyncio.Event()
            listener = asyncio.create_task(
                listen(
                    resources.redis, resolver.forget, resolver.forget_all, subscribed=subscribed
                ),
                name="invalidations",
            )
            # Serve once invalidations are heard (if Redis is away, serve anyway: the
            # LRU is cleared when the subscription comes up).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscribed.wait(), settings.redis_timeout * 2)
            try:
                yield
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                await clicks.close()

    routes = [
        *health.routes,
        Route("/metrics", metrics),
        Route("/{code}", follow, methods=["GET", "HEAD"]),
    ]
    middleware = [
        Middleware(
            RequestLogMiddleware,
            service="redirect",
            skip_paths=health.PROBE_PATHS,
            log_client=False,
        )
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={404: not_found},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # "/abc/" is not "/abc": it never reaches storage
    return app


def _secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    log.warning("SHORTY_SECRET_KEY is not set: visitor hashes differ between replicas")
    return os.urandom(32)
