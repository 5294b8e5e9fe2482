"""The redirect service: ``GET|HEAD /{code}`` and nothing it does not need.

A redirect is answered by ``RedirectService``, a pure ASGI app: Starlette's
routing, request objects and exception layers cost more than the whole lookup,
so the hot path does without them. Everything else — probes, error pages — is a
plain Starlette app (``RedirectService.fallback``), which also owns the lifespan:
it builds the service's ``RedirectDeps`` (``shorty.bootstrap``) and yields them as
lifespan state, which ``_serve`` and ``follow`` receive typed. The whole life of a
redirect is here and in ``resolve.py``: what the request log, the latency
histogram and the click record of it are written in ``_serve`` from facts read
once (docs/performance.md). The metrics have a port of their own
(``shorty.obs.exposition``): here ``/metrics`` is an unknown code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NamedTuple

from opentelemetry import trace
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from shorty.bootstrap import DEPS, RedirectDeps, redirect_deps
from shorty.cache.invalidation import listen
from shorty.cache.links import CachedLink
from shorty.core.codes import is_well_formed
from shorty.core.links import LinkState
from shorty.core.targets import ascii_url, merge_query
from shorty.obs import tracing
from shorty.obs.metrics import DEADLINE_EXCEEDED, RATE_LIMIT_DECISIONS
from shorty.obs.requestlog import (
    CLIENT_CLOSED,
    INTERNAL_ERROR,
    Answered,
    RequestLogMiddleware,
    RouteTemplate,
    accepted_id,
    internal_error,
    unhandled,
    went_away,
)
from shorty.obs.serverspans import redirect_spans
from shorty.redirect.clicks import click_of, next_click_id
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
_FOLLOWED = frozenset({"GET", "HEAD"})
_NO_STORE = b"no-store"
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_EXCEEDED = DEADLINE_EXCEEDED.labels("redirect")
_ALLOWED = RATE_LIMIT_DECISIONS.labels("redirect", "allowed")
_LIMITED = RATE_LIMIT_DECISIONS.labels("redirect", "limited")
# The route of every request the hot path takes, as the request metrics name it.
CODE_ROUTE = RouteTemplate("/{code}")


class RedirectService:
    """``GET|HEAD /{code}`` in pure ASGI, observed in one place (``_serve``); the bound
    on requests in flight (``max_in_flight``; 0: none) around every request but the
    probes. Anything else goes through the request log middleware to ``fallback``,
    which also owns the lifespan; the lifespan's state (the service's
    ``RedirectDeps``) comes with every request's scope. Either way a span for the
    sampled requests only, when spans are exported (``shorty.obs.serverspans``)."""

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
        # What it records of a request, by the same rules for both paths.
        self.log = RequestLogMiddleware(
            fallback,
            service="redirect",
            skip_paths=health.PROBE_PATHS,
            log_client=False,
            access_log=access_log,
            sample=sample,
            slow=slow,
        )
        spans = tracing.current()
        self._app = redirect_spans(self.log, spans)
        self._follow = redirect_spans(self._serve, spans)
        self._spans = spans.recording  # a sampled request's span may be current in _serve
        self._bound = Bound("redirect", max_in_flight, PLAIN) if max_in_flight else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _OWN_PATHS:
            await self._app(scope, receive, send)  # the lifespan, and probes: never shed
            return
        # Inline (web/shedding.py's ShedMiddleware, without its coroutine): a shed
        # request costs no log line and no lookup.
        bound = self._bound
        app = self._follow if scope["method"] in _FOLLOWED else self._app
        if bound is None:
            await app(scope, receive, send)
            return
        if bound.busy >= bound.limit:
            await bound.refuse(send)
            return
        bound.busy += 1
        try:
            await app(scope, receive, send)
        finally:
            bound.busy -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A redirect, with what RequestLogMiddleware would add and record (the id, the
        histogram, the access line; a 500 problem for an exception), the facts they
        and the click share read once: one clock, one pass over the headers, one id
        for the request and its click, and no wrapper around ``send``."""
        method = scope["method"]
        scope["route"] = CODE_ROUTE
        started = time.perf_counter()
        now = time.time()
        headers = dict(scope["headers"])
        click_id = next_click_id()
        request_id = accepted_id(headers.get(b"x-request-id")) or click_id
        id_header = (b"x-request-id", request_id.encode())
        status = 500
        answered = False  # the redirect's start was sent
        refused: Answered | None = None  # how a refusal was answered
        failed = False  # answered with the 500 problem
        user_agent = ""
        try:
            deps: RedirectDeps = scope["state"][DEPS]
            code = scope["path"][1:]
            # An LRU hit on an active link with no click limit is answered without
            # awaiting anything; the rest is follow's (it applies the rate limit, when
            # there is one, before any lookup).
            cached = None
            if deps.buckets is None and is_well_formed(code):
                cached = deps.resolver.cached(code)
            link: CachedLink | Refusal
            if (
                cached is not None
                and cached.max_clicks is None
                and cached.state_at_timestamp(now) is LinkState.ACTIVE
            ):
                link = cached
            else:
                link = await follow(deps, scope, now, cached)
            if isinstance(link, Refusal):
                refused = Answered(send, id_header)
                await link.answer(scope, receive, refused)
                return
            location = link.target
            query = scope["query_string"]
            if query and link.forward_query != "off":
                override = link.forward_query == "override"
                location = merge_query(location, query.decode("latin-1"), override=override)
            start = {
                "type": "http.response.start",
                "status": link.redirect_type,
                "headers": [
                    (b"location", ascii_url(location).encode("ascii")),
                    (b"cache-control", deps.cache_control.get(link.redirect_type, _NO_STORE)),
                    (b"content-length", b"0"),
                    id_header,
                ],
            }
            user_agent = headers.get(b"user-agent", b"").decode("latin-1")[:512]
            # HEAD is what link previews send: answered, not counted.
            click = (
                click_of(
                    code,
                    link.id,
                    int(now * 1000),
                    headers.get(b"referer"),
                    user_agent,
                    client_ip(scope, deps.settings.trusted_proxies),
                    deps.secret,
                    click_id,
                )
                if method == "GET"
                else None
            )
            answered = True
            status = link.redirect_type
            await send(start)
            await send(_EMPTY_BODY)
            if click is not None:
                deps.clicks.add(click)
        except ClientDisconnect:
            if not answered and not (refused and refused.status):
                status = CLIENT_CLOSED
            went_away(scope, request_id)
        except Exception:
            unhandled(scope, request_id)
            if not answered and not (refused and refused.status):
                await internal_error(send, (id_header,))
                refused = None
                status, failed = 500, True
        finally:
            elapsed = time.perf_counter() - started
            if refused is not None and refused.status:
                self.log.record(
                    scope,
                    refused.status,
                    elapsed,
                    request_id,
                    refused.problem,
                    problem_seen=refused.problem_seen,
                )
            elif failed:
                self.log.record(
                    scope, status, elapsed, request_id, INTERNAL_ERROR, problem_seen=True
                )
            elif status < 400 and b"traceparent" not in headers and not self._in_span():
                self.log.record_known(scope, now + elapsed, status, elapsed, request_id, user_agent)
            else:  # a caller's trace, or the span of a sampled request: its ids in the line
                self.log.record(scope, status, elapsed, request_id)

    def _in_span(self) -> bool:
        """Whether a sampled request's span is current (only when spans are exported)."""
        return self._spans and trace.get_current_span().is_recording()


class Refusal(NamedTuple):
    """Why a code does not redirect, and how that is answered."""

    status: int
    retry_after: int | None = None
    blocked_by: str | None = None
    shed: bool = False  # too many lookups past the LRU: the fixed 503 of web/shedding.py

    async def answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.shed:
            await PLAIN(send)
            return
        response = not_redirecting(
            Request(scope), self.status, retry_after=self.retry_after, blocked_by=self.blocked_by
        )
        await response(scope, receive, send)


NOT_FOUND = Refusal(404)
GONE = Refusal(410)


async def follow(
    deps: RedirectDeps, scope: Scope, now: float, cached: CachedLink | None = None
) -> CachedLink | Refusal:
    """The link ``GET|HEAD /{code}`` redirects to at POSIX time ``now``, or why not.
    ``cached``: the link as the LRU has it, read already (there is no rate limit)."""
    code = scope["path"][1:]
    if cached is None:
        if not is_well_formed(code):
            return NOT_FOUND
        if deps.buckets is not None:
            ip = client_ip(scope, deps.settings.trusted_proxies)
            wait = deps.buckets.take(rate_limit_key(ip, deps.settings.ipv6_prefix))
            if wait:
                _LIMITED.inc()
                return Refusal(429, retry_after=math.ceil(wait))
            _ALLOWED.inc()
    try:
        link = cached or await deps.resolver.resolve(code)
        if link is None:
            return NOT_FOUND
        if link.state_at_timestamp(now) is not LinkState.ACTIVE:
            return Refusal(link.blocked, blocked_by=deps.blocked_by) if link.blocked else GONE
        if link.max_clicks is not None and not await deps.limits.allow(
            code, link.max_clicks, spend=scope["method"] == "GET"
        ):
            return GONE
    except Overloaded:  # too many lookups past the LRU already (counted and logged there)
        return _SHED
    except UNAVAILABLE as exc:
        if isinstance(exc, DeadlineExceeded):  # SHORTY_REDIRECT_DEADLINE ran out
            _EXCEEDED.inc()
            log.warning("lookup of %s failed: %s", code, exc)
        else:
            log.warning("lookup of %s failed: PostgreSQL unavailable", code)
        return Refusal(503, retry_after=RETRY_AFTER_UNAVAILABLE)
    return link


_SHED = Refusal(503, shed=True)


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
