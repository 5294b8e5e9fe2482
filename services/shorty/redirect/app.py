"""The redirect service: ``GET|HEAD /{code}`` and nothing it does not need.

A redirect is answered by ``RedirectService``, a pure ASGI app: Starlette's
routing, request objects and exception layers cost more than the whole lookup,
so the hot path does without them. Everything else — probes, error pages — is a
plain Starlette app (``RedirectService.fallback``), which also owns the lifespan:
it builds the service's ``RedirectDeps`` (``shorty.bootstrap``) and yields them as
lifespan state, which ``follow`` receives typed. The whole life of a redirect is
here and in ``resolve.py``. The metrics have a port
of their own (``shorty.obs.exposition``): here ``/metrics`` is an unknown code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shorty.bootstrap import DEPS, RedirectDeps, redirect_deps
from shorty.cache.invalidation import listen
from shorty.core.codes import is_well_formed
from shorty.core.links import LinkState
from shorty.core.targets import ascii_url, merge_query
from shorty.obs import tracing
from shorty.obs.metrics import DEADLINE_EXCEEDED, RATE_LIMIT_DECISIONS
from shorty.obs.requestlog import RequestLogMiddleware, RouteTemplate
from shorty.obs.serverspans import redirect_spans
from shorty.redirect.clicks import click_fields
from shorty.redirect.pages import not_redirecting
from shorty.resilience.deadline import DeadlineExceeded
from shorty.runtime import open_resources
from shorty.settings import Settings
from shorty.store.errors import UNAVAILABLE
from shorty.web import health
from shorty.web.clientip import client_ip, rate_limit_key
from shorty.web.drain import Drain
from shorty.web.liveness import LoopWatchdog
from shorty.web.shedding import PLAIN, Bound, Overloaded

log = logging.getLogger(__name__)
RETRY_AFTER_UNAVAILABLE = 5
_OWN_PATHS = health.PROBE_PATHS
_NO_STORE = b"no-store"
_EXCEEDED = DEADLINE_EXCEEDED.labels("redirect")
_ALLOWED = RATE_LIMIT_DECISIONS.labels("redirect", "allowed")
_LIMITED = RATE_LIMIT_DECISIONS.labels("redirect", "limited")
# The route of every request the hot path takes, as the request metrics name it.
CODE_ROUTE = RouteTemplate("/{code}")


class RedirectService:
    """The bound on requests in flight (``max_in_flight``; 0: none) and the request
    log around ``GET|HEAD /{code}`` in pure ASGI; any other request
    goes to ``fallback``, which also owns the lifespan. The lifespan's state (the
    service's ``RedirectDeps``) comes with every request's scope."""

    def __init__(
        self,
        fallback: Starlette,
        *,
        access_log: bool = True,
        sample: float = 1.0,
        slow: float = 0.1,
        max_in_flight: int = 0,
    ) -> None:
        self.fallback = fallback
        request_log = RequestLogMiddleware(
            self._route,
            service="redirect",
            skip_paths=health.PROBE_PATHS,
            log_client=False,
            access_log=access_log,
            sample=sample,
            slow=slow,
        )
        # A span for the sampled redirects only; nothing at all unless spans are exported.
        self._app = redirect_spans(request_log, tracing.current())
        self._bound = Bound("redirect", max_in_flight, PLAIN) if max_in_flight else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Outermost, inline (web/shedding.py's ShedMiddleware, without its coroutine):
        # a shed request costs no log line and no lookup; probes are never shed.
        bound = self._bound
        if bound is None or scope["type"] != "http" or scope["path"] in _OWN_PATHS:
            await self._app(scope, receive, send)
            return
        if bound.busy >= bound.limit:
            await bound.refuse(send)
            return
        bound.busy += 1
        try:
            await self._app(scope, receive, send)
        finally:
            bound.busy -= 1

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in ("GET", "HEAD")
            or scope["path"] in _OWN_PATHS
        ):
            await self.fallback(scope, receive, send)
            return
        scope["route"] = CODE_ROUTE
        await follow(scope["state"][DEPS], scope, receive, send)


async def follow(deps: RedirectDeps, scope: Scope, receive: Receive, send: Send) -> None:
    code = scope["path"][1:]
    if not is_well_formed(code):
        await _refuse(scope, receive, send, 404)
        return
    ip = client_ip(scope, deps.settings.trusted_proxies)
    if deps.buckets is not None:
        wait = deps.buckets.take(rate_limit_key(ip, deps.settings.ipv6_prefix))
        if wait:
            _LIMITED.inc()
            await _refuse(scope, receive, send, 429, retry_after=math.ceil(wait))
            return
        _ALLOWED.inc()
    now = time.time()
    spend = scope["method"] == "GET"  # HEAD is what link previews send: answered, not counted
    try:
        link = await deps.resolver.resolve(code)
        if link is None:
            await _refuse(scope, receive, send, 404)
            return
        if link.state_at_timestamp(now) is not LinkState.ACTIVE:
            if link.blocked:
                await _refuse(scope, receive, send, link.blocked, blocked_by=deps.blocked_by)
            else:
                await _refuse(scope, receive, send, 410)
            return
        if link.max_clicks is not None and not await deps.limits.allow(
            code, link.max_clicks, spend=spend
        ):
            await _refuse(scope, receive, send, 410)
            return
    except Overloaded:  # too many lookups past the LRU already (counted and logged there)
        await PLAIN(send)
        return
    except UNAVAILABLE as exc:
        if isinstance(exc, DeadlineExceeded):  # SHORTY_REDIRECT_DEADLINE ran out
            _EXCEEDED.inc()
            log.warning("lookup of %s failed: %s", code, exc)
        else:
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
        (b"cache-control", deps.cache_control.get(link.redirect_type, _NO_STORE)),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": link.redirect_type, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
    if spend:
        click = click_fields(code, link.id, scope["headers"], ip, int(now * 1000), deps.secret)
        deps.clicks.add(click)


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


def create_app(
    settings: Settings, *, watchdog: LoopWatchdog | None = None, drain: Drain | None = None
) -> RedirectService:
    """The redirect service; ``watchdog`` judges its event loop for ``/livez`` (`shorty
    serve` shares it with the metrics listener, which answers ``/livez`` off the loop);
    ``drain`` turns ``/readyz`` to 503 once a SIGTERM arrives."""
    watchdog = watchdog or LoopWatchdog(settings.liveness_max_lag)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, RedirectDeps]]:
        async with watchdog.watching(), open_resources(settings) as resources:
            deps = redirect_deps(settings, resources)
            deps.clicks.start()
            subscribed = asyncio.Event()
            forget, distrust_all = deps.resolver.forget, deps.resolver.distrust_all

            def resubscribed() -> None:
                # Invalidations may have been missed: no LRU copy is fresh any more
                # (each is a stale copy, served only while PostgreSQL is away). Redis has just
                # answered the SUBSCRIBE, so the lookups read it again at once instead
                # of skipping it until its breaker probes: with PostgreSQL still away,
                # skipping it turned every link the LRU held into a 503.
                resources.redis_guard.answered_elsewhere("the invalidation subscription stands")
                distrust_all()

            listener = asyncio.create_task(
                listen(resources.redis, forget, resubscribed, subscribed=subscribed),
                name="invalidations",
            )
            # Serve once invalidations are heard (if Redis is away, serve anyway: the
            # LRU is cleared when the subscription comes up).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscribed.wait(), settings.redis_timeout * 2)
            try:
                yield {DEPS: deps}
            finally:
                # Each step of the stop is bounded (the resources' close is, too): a
                # listener stuck in its client's teardown is left behind, not awaited.
                listener.cancel()
                await asyncio.wait({listener}, timeout=settings.redis_timeout * 4)
                await deps.clicks.close()

    # Ready while either store answers: the LRU, Redis and PostgreSQL are each a tier.
    probes = health.routes(
        serves_with=[health.POSTGRES, health.REDIS], watchdog=watchdog, drain=drain
    )
    fallback = Starlette(routes=probes, exception_handlers={404: not_found}, lifespan=lifespan)
    return RedirectService(
        fallback,
        access_log=settings.access_log,
        sample=settings.access_log_sample,
        slow=settings.access_log_slow,
        max_in_flight=settings.max_in_flight,
    )
