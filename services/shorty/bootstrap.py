"""What each service is made of: its dependencies, built in one place.

A service's lifespan opens the long-lived clients (``shorty.runtime``), hands
them with the ``Settings`` to one function here, and yields what it returns as
Starlette lifespan state under ``DEPS``: a frozen, typed object, so a handler
reads ``deps.links`` (checked by mypy) instead of an untyped ``app.state.links``.

- ``RedirectDeps``: the redirect hot path (``shorty.redirect.app``).
- ``ApiDeps``: the API's stores, tokens, limiter, link cache and Redis guard; handlers get
  it with ``api_deps_of(request)``.
- ``WorkerDeps``: the worker's consumers and jobs (``shorty.worker.main``).

The link cache (Redis) is built by ``link_cache`` for all three.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import redis.asyncio as aredis
from starlette.requests import HTTPConnection

from shorty.api.tokens import AccessTokens
from shorty.cache.guard import RedisGuard
from shorty.cache.links import LinkCache
from shorty.ratelimit.limiter import Limiter
from shorty.ratelimit.local import TokenBuckets
from shorty.ratelimit.redis import RedisLimits
from shorty.redirect.clickbuffer import ClickBuffer
from shorty.redirect.limits import ClickLimits
from shorty.redirect.resolve import Resolver
from shorty.resilience.breaker import Breaker
from shorty.runtime import Resources
from shorty.settings import Settings
from shorty.store.idempotency import IdempotencyStore
from shorty.store.keys import KeyStore
from shorty.store.links import LinkStore
from shorty.store.sessions import SessionStore
from shorty.store.stats import StatsStore
from shorty.store.users import UserStore
from shorty.worker.enrich import GeoIP
from shorty.worker.events import CacheUpdater, OutboxRelay
from shorty.worker.ingest import ClickIngester
from shorty.worker.rollup import Aggregator

if TYPE_CHECKING:
    from shorty.live.sampler import LiveSampler

log = logging.getLogger(__name__)

DEPS = "deps"  # the key of a service's dependencies in its lifespan state


@dataclass(frozen=True, slots=True)
class RedirectDeps:
    """What a redirect reads: attribute access on slots, as cheap as it gets."""

    settings: Settings
    pool: asyncpg.Pool
    redis: aredis.Redis
    resolver: Resolver
    limits: ClickLimits
    clicks: ClickBuffer
    buckets: TokenBuckets | None  # None: no per-client limit (SHORTY_REDIRECT_RATE 0)
    secret: bytes  # keys the visitor hash
    cache_control: dict[int, bytes]  # by redirect status; others get no-store
    blocked_by: str  # RFC 7725: a 451 names who blocks the resource
    breakers: tuple[Breaker, ...]  # PostgreSQL's and Redis's, named in /readyz


@dataclass(frozen=True, slots=True)
class ApiDeps:
    settings: Settings
    pool: asyncpg.Pool
    redis: aredis.Redis
    redis_guard: RedisGuard  # the Redis breaker: every Redis caller of the process skips Redis
    breakers: tuple[Breaker, ...]  # PostgreSQL's and Redis's, named in /readyz
    links: LinkStore
    keys: KeyStore
    users: UserStore
    stats: StatsStore
    idempotency: IdempotencyStore
    sessions: SessionStore
    tokens: AccessTokens
    limiter: Limiter
    cache: LinkCache
    openapi: dict[str, Any]
    live: LiveSampler  # the live view's reads of every service (SHORTY_LIVE_TARGETS)


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    settings: Settings
    pool: asyncpg.Pool
    redis: aredis.Redis
    ingester: ClickIngester
    cache_updater: CacheUpdater
    relay: OutboxRelay
    aggregator: Aggregator
    idempotency: IdempotencyStore
    redis_guard: RedisGuard  # the Redis breaker: the job loops pause while it is open


def link_cache(settings: Settings, redis: aredis.Redis) -> LinkCache:
    """The Redis tier of the link lookup, which the API and the worker invalidate."""
    return LinkCache(redis, settings.cache_ttl, settings.negative_ttl, settings.stale_ttl)


def redirect_deps(settings: Settings, resources: Resources) -> RedirectDeps:
    guard = resources.redis_guard  # shared by the lookup tiers and the limits
    resolver = Resolver(
        resources.pool,
        link_cache(settings, resources.redis),
        guard,
        resources.postgres_breaker,
        lru_size=settings.lru_size,
        lru_ttl=settings.lru_ttl,
        negative_ttl=settings.negative_ttl,
        # A lookup waits for PostgreSQL no longer than its budget allows.
        db_timeout=min(settings.db_timeout, settings.redirect_deadline),
        stale_ttl=settings.stale_ttl,
        max_lookups=settings.lookup_bound,
        deadline=settings.redirect_deadline,
        redis_call=settings.redirect_redis_timeout,
    )
    clicks = ClickBuffer(
        resources.redis,
        capacity=settings.click_buffer,
        batch=settings.click_batch,
        interval=settings.click_flush_interval,
        write_timeout=settings.redis_timeout * 4,
    )
    return RedirectDeps(
        settings=settings,
        pool=resources.pool,
        redis=resources.redis,
        resolver=resolver,
        limits=ClickLimits(
            resources.pool,
            resources.redis,
            guard,
            deadline=settings.redirect_deadline,
        ),
        clicks=clicks,
        buckets=(
            TokenBuckets(settings.redirect_rate, settings.redirect_burst)
            if settings.redirect_rate > 0
            else None
        ),
        secret=_secret(settings),
        cache_control=cache_control(settings.permanent_max_age),
        blocked_by=settings.public_base,
        breakers=resources.breakers,
    )


def api_deps(settings: Settings, resources: Resources, *, openapi: dict[str, Any]) -> ApiDeps:
    """The API's dependencies; ``openapi`` is the document its routes make."""
    pool = resources.pool
    guard = resources.redis_guard
    return ApiDeps(
        settings=settings,
        pool=pool,
        redis=resources.redis,
        redis_guard=guard,
        breakers=resources.breakers,
        links=LinkStore(pool, settings.code_length),
        keys=KeyStore(pool, max_live=settings.max_keys_per_user),
        users=UserStore(pool),
        stats=StatsStore(pool),
        idempotency=IdempotencyStore(pool),
        sessions=SessionStore(pool, timedelta(seconds=settings.refresh_token_ttl)),
        tokens=AccessTokens(_jwt_secret(settings), settings.access_token_ttl),
        limiter=Limiter(
            RedisLimits(resources.redis, settings.ratelimit_algorithm),
            replicas=settings.api_replicas,
            guard=guard,
        ),
        cache=link_cache(settings, resources.redis),
        openapi=openapi,
        live=_live_sampler(settings),
    )


def _live_sampler(settings: Settings) -> LiveSampler:
    # Imported here: only the API reads the live figures (aiohttp stays out of the
    # redirect service and the worker).
    from shorty.live.sampler import LiveSampler

    return LiveSampler(list(settings.live_targets))


def worker_deps(settings: Settings, resources: Resources, geoip: GeoIP) -> WorkerDeps:
    return WorkerDeps(
        settings=settings,
        pool=resources.pool,
        redis=resources.redis,
        ingester=ClickIngester(resources.pool, geoip, settings.click_retention_days),
        cache_updater=CacheUpdater(link_cache(settings, resources.redis)),
        relay=OutboxRelay(resources.pool, resources.redis),
        aggregator=Aggregator(resources.pool),
        idempotency=IdempotencyStore(resources.pool),
        redis_guard=resources.redis_guard,
    )


def api_deps_of(request: HTTPConnection) -> ApiDeps:
    """The API's dependencies, from the lifespan state every request carries."""
    deps: ApiDeps = request.scope["state"][DEPS]
    return deps


def cache_control(permanent_max_age: int) -> dict[int, bytes]:
    """Cache-Control by redirect status. A 302/307 must not be cached, or its clicks
    go unseen and a change never arrives; a 301/308 may be, but only briefly
    (SHORTY_PERMANENT_MAX_AGE), so a takedown reaches browsers and CDNs soon."""
    permanent = f"public, max-age={permanent_max_age}".encode()
    return {301: permanent, 308: permanent}


def _secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode()
    log.warning("SHORTY_SECRET_KEY is not set: visitor hashes differ between replicas")
    return os.urandom(32)


def _jwt_secret(settings: Settings) -> bytes:
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    log.warning("SHORTY_JWT_SECRET is not set: access tokens work only on this replica")
    return os.urandom(32)
