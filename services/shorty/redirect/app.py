"""The redirect service: ``GET|HEAD /{code}`` and nothing it does not need.

A redirect is answered by ``Redirects``, a pure ASGI app: Starlette's
routing, request objects and exception layers cost more than the whole lookup,
so the hot path does without them. Everything else — probes, error pages — is a
plain Starlette app (``Redirects.fallback``), which also owns the lifespan. The
whole life of a redirect is here and in ``resolve.py``. The metrics have a port
of their own (``shorty.obs.exposition``): here ``/metrics`` is an unknown code.
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
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import State
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shorty.cache.guard import RedisGuard
from shorty.cache.invalidation import listen
from shorty.cache.links import LinkCache
from shorty.core.codes import is_well_formed
from shorty.core.links import LinkState
from shorty.core.targets import ascii_url, merge_query
from shorty.obs.metrics import RATE_LIMITED
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
from shorty.web.clientip import client_ip, rate_limit_key

log = logging.getLogger(__name__)
RETRY_AFTER_UNAVAILABLE = 5
_OWN_PATHS = health.PROBE_PATHS
_NO_STORE = b"no-store"


def cache_control(permanent_max_age: int) -> dict[int, bytes]:
    """Cache-Control by redirect status. A 302/307 must not be cached, or its clicks
    go unseen and a change never arrives; a 301/308 may be, but only briefly
    (SHORTY_PERMANENT_MAX_AGE), so a takedown reaches browsers and CDNs soon."""
    permanent = f"public, max-age={permanent_max_age}".encode()
    return {301: permanent, 308: permanent}


class RedirectService:
    """The request log around ``GET|HEAD /{code}`` in pure ASGI; any other request
    goes to ``fallback``, which also owns the lifespan and ``state``."""

    def __init__(self, fallback: Starlette, *, access_log: bool = True) -> None:
        self.fallback = fallback
        self._app = RequestLogMiddleware(
            self._route,
            service="redirect",
            skip_paths=health.PROBE_PATHS,
            log_client=False,
            access_log=access_log,
        )

    @property
    def state(self) -> State:
        return self.fallback.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"] in _OWN_PATHS
        ):
            await self.fallback(scope, receive, send)
            return
        await follow(self.fallback.state, scope, receive, send)


async def follow(state: Any, scope: Scope, receive: Receive, send: Send) -> None:
    code = scope["path"][1:]
    if not is_well_formed(code):
        await _refuse(scope, receive, send, 404)
        return
    ip = client_ip(scope, state.settings.trusted_proxies)
    if state.buckets is not None:
        wait = state.buckets.take(rate_limit_key(ip, state.settings.ipv6_prefix))
        if wait:
            RATE_LIMITED.labels("redirect").inc()
            await _refuse(scope, receive, send, 429, retry_after=math.ceil(wait))
            return
    now = time.time()
    spend = scope["method"] == "GET"  # HEAD is what link previews send: answered, not counted
    try:
        link = await state.resolver.resolve(code)
        if link is None:
            await _refuse(scope, receive, send, 404)
            return
        if link.state_at_timestamp(now) is not LinkState.ACTIVE:
            if link.blocked:
                await _refuse(scope, receive, send, link.blocked, blocked_by=state.blocked_by)
            else:
                await _refuse(scope, receive, send, 410)
            return
        if link.max_clicks is not None and not await state.limits.allow(
            code, link.max_clicks, spend=spend
        ):
            await _refuse(scope, receive, send, 410)
            return
    except UNAVAILABLE:
        log.warning("lookup of %s failed: PostgreSQL unavailable", code)
        await _refuse(scope, receive, send, 503, retry_after=RETRY_AFTER_UNAVAILABLE)
        return
    query = scope["query_string"]
    location = link.target
    if query and link.forward_query != "off":
        override = link.forward_query == "override"
        location = merge_query(location, query.decode("latin-1"), override=override)
    headers = [
        (b"location", ascii_url(location).encode("ascii")),
        (b"cache-control", state.cache_control.get(link.redirect_type, _NO_STORE)),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": link.redirect_type, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    if spend:
        click = click_fields(code, link.id, scope["headers"], ip, int(now * 1000), state.secret)
        state.clicks.add(click)


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    *,
    retry_after: int | None = None,
    blocked_by: str | None = None,
) -> None:
    response = not_redirecting(
        Request(scope), status, retry_after=retry_after, blocked_by=blocked_by
    )
    await response(scope, receive, send)


async def not_found(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return not_redirecting(request, 404)


def create_app(settings: Settings) -> RedirectService:
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
                write_timeout=settings.redis_timeout * 4,
            )
            app.state.settings = settings
            app.state.pool = resources.pool
            app.state.redis = resources.redis
            app.state.resolver = resolver
            app.state.limits = ClickLimits(resources.pool, resources.redis, guard)
            app.state.clicks = clicks
            app.state.buckets = (
                TokenBuckets(settings.redirect_rate, settings.redirect_burst)
                if settings.redirect_rate > 0
                else None
            )
            app.state.secret = _secret(settings)
            app.state.cache_control = cache_control(settings.permanent_max_age)
            # RFC 7725: a 451 names who blocks the resource.
            app.state.blocked_by = settings.public_base
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
                # Each step of the stop is bounded (the resources' close is, too): a
                # listener stuck in its client's teardown is left behind, not awaited.
                listener.cancel()
                await asyncio.wait({listener}, timeout=settings.redis_timeout * 4)
                await clicks.close()

    fallback = Starlette(
        routes=health.routes, exception_handlers={404: not_found}, lifespan=lifespan
    )
    return RedirectService(fallback, access_log=settings.access_log)


def _secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    log.warning("SHORTY_SECRET_KEY is not set: visitor hashes differ between replicas")
    return os.urandom(32)
