"""Code -> link, through the tiers: process LRU, then Redis, then PostgreSQL.

Hits and misses are both remembered: a link for ``lru_ttl`` seconds, an
unknown code for ``negative_ttl`` seconds (in the LRU and in Redis), so a
flood of random codes does not reach PostgreSQL. The API's changes reach the
LRU through ``forget`` (driven by Redis pub/sub). After a Redis failure the
path skips Redis for a moment (RedisGuard, the process's Redis breaker) instead of
waiting on it again.

Serve stale on error: a link's copy (in the LRU, in Redis) is kept
``stale_ttl`` seconds past its freshness. A stale copy is never served while
PostgreSQL answers; when PostgreSQL is unavailable (``UNAVAILABLE``), it is
(``outage.py``). Invalidation removes stale copies as it removes fresh ones, and
a copy is served only if it is still there after PostgreSQL failed.

Deadlines: a lookup past the LRU runs within the request's budget
(SHORTY_REDIRECT_DEADLINE from when it left the LRU: an LRU hit never waits, and
starts none), and the cache tier's Redis calls within SHORTY_REDIRECT_REDIS_TIMEOUT
each, so a slow Redis opens the Redis breaker and the lookup still has time for
PostgreSQL;
whatever happens, it ends within ``deadline.GRACE`` of the deadline
(``shorty.resilience.deadline``) with ``DeadlineExceeded``, a 503.

Load shedding: at most ``max_lookups`` lookups go past the LRU at once: the next
one raises ``Overloaded`` (a 503) at once instead of queueing for Redis or
PostgreSQL, while LRU hits are still answered (``shorty.web.shedding``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import asyncpg
from lru import LRU
from redis.exceptions import RedisError

from shorty.cache.guard import RedisGuard
from shorty.cache.links import ABSENT, Absent, CachedLink, LinkCache, Stale
from shorty.core.links import blocked_status
from shorty.obs.metrics import LOOKUPS
from shorty.redirect.outage import PostgresOutage
from shorty.resilience import deadline, retry
from shorty.resilience.breaker import Breaker
from shorty.resilience.deadline import DeadlineExceeded
from shorty.store.errors import UNAVAILABLE
from shorty.web.shedding import Overloaded, Shedder

# Bound once: looking a labelled child up costs more than the lookup it counts.
_LRU_HIT = LOOKUPS.labels("lru", "hit")
_LRU_ABSENT = LOOKUPS.labels("lru", "absent")
_REDIS_HIT = LOOKUPS.labels("redis", "hit")
_REDIS_ABSENT = LOOKUPS.labels("redis", "absent")
_PG_HIT = LOOKUPS.labels("postgres", "hit")
_PG_ABSENT = LOOKUPS.labels("postgres", "absent")

_SELECT = (
    "SELECT id, target, redirect_type, expires_at, disabled, max_clicks, forward_query,"
    " blocked_reason FROM urls WHERE code = $1"
)


class Resolver:
    def __init__(
        self,
        pool: asyncpg.Pool,
        cache: LinkCache,
        guard: RedisGuard,
        postgres: Breaker,
        *,
        lru_size: int,
        lru_ttl: float,
        negative_ttl: float,
        db_timeout: float,
        stale_ttl: float = 0,
        max_lookups: int = 0,
        deadline: float = 60.0,
        redis_call: float | None = None,
    ) -> None:
        self._pool = pool
        self._cache = cache
        # LRU maps (lru-dict, in C): code -> (monotonic fresh deadline, monotonic stale
        # deadline, CachedLink.fields()), and code -> deadline for codes known not to exist.
        self._links: LRU[str, tuple[float, float, tuple[Any, ...]]] | None = None
        self._absent: LRU[str, float] | None = None
        self._lru_ttl = lru_ttl
        self._stale_ttl = stale_ttl
        self._outage = PostgresOutage(stale_ttl, db_timeout)
        self._negative_ttl = negative_ttl
        if lru_size > 0:
            self._links = LRU(lru_size)
            if negative_ttl > 0:
                self._absent = LRU(max(1024, lru_size // 4))
        self._guard = guard
        self._postgres = postgres  # the pool's breaker (store/db.py)
        self._db_timeout = db_timeout
        self._deadline = deadline  # SHORTY_REDIRECT_DEADLINE
        self._redis_call = redis_call  # SHORTY_REDIRECT_REDIS_TIMEOUT, each cache call
        # A lookup that overlapped an invalidation of its code (or of everything) is
        # answered but not remembered: it may carry what was just changed.
        self._sequence = 0
        self._forgotten: LRU[str, int] = LRU(10_000)  # code -> sequence of its last forget
        self._all_forgotten = 0
        # Concurrent lookups of one code share the first one's trip to Redis/PostgreSQL;
        # at most max_lookups such trips at once (0: no bound).
        self._in_flight: dict[str, asyncio.Future[CachedLink | None]] = {}
        self._max_lookups = max_lookups or sys.maxsize
        self._shedder = Shedder("redirect", "lookups", max_lookups)

    def forget(self, code: str) -> None:
        self._sequence += 1
        self._forgotten[code] = self._sequence
        for memory in (self._links, self._absent):
            if memory is not None and code in memory:
                del memory[code]

    def forget_all(self) -> None:
        self._sequence += 1
        self._all_forgotten = self._sequence
        if self._links is not None:
            self._links.clear()
        if self._absent is not None:
            self._absent.clear()

    def distrust_all(self) -> None:
        """Invalidations may have been missed (Redis was away): no copy in the LRU is
        fresh any more, but each stays a stale copy until its stale deadline, served
        only while PostgreSQL is unavailable, as a Redis copy past its freshness is.
        (Clearing the LRU instead turned its links into 503s when Redis no longer
        held them and PostgreSQL was still away.) Unknown codes are forgotten."""
        if self._stale_ttl <= 0:
            self.forget_all()
            return
        self._sequence += 1
        self._all_forgotten = self._sequence
        if self._links is not None:
            for code, (_, stale_until, fields) in self._links.items():
                self._links[code] = (0.0, stale_until, fields)
        if self._absent is not None:
            self._absent.clear()

    def cached(self, code: str) -> CachedLink | None:
        """The LRU's fresh copy of ``code``'s link, counted as a hit; None when it has
        none. What the redirect asks first, before it awaits anything."""
        if self._links is not None:
            entry = self._links.get(code)
            if entry is not None and entry[0] > time.monotonic():
                _LRU_HIT.inc()
                return CachedLink(*entry[2])
        return None

    async def resolve(self, code: str) -> CachedLink | None:
        link = self.cached(code)
        if link is not None:
            return link
        if self._absent is not None:
            absent_until = self._absent.get(code)
            if absent_until is not None and absent_until > time.monotonic():
                _LRU_ABSENT.inc()
                return None
        async with deadline.within(self._deadline):
            pending = self._in_flight.get(code)
            if pending is not None:
                return await asyncio.shield(pending)
            if len(self._in_flight) >= self._max_lookups:
                self._shedder.shed()
                raise Overloaded
            pending = asyncio.get_running_loop().create_future()
            self._in_flight[code] = pending
            try:
                link = await self._look_up(code)
            except BaseException as exc:
                # Cancelled (this request's backstop): the others' lookup failed, but
                # they are not cancelled themselves; they answer it as a deadline.
                shared = exc if isinstance(exc, Exception) else DeadlineExceeded(self._deadline)
                pending.set_exception(shared)
                pending.exception()  # retrieved here, so no "never retrieved" warning
                raise
            else:
                pending.set_result(link)
                return link
            finally:
                del self._in_flight[code]

    async def _look_up(self, code: str) -> CachedLink | None:
        started = self._sequence
        found, generation = await self._from_redis(code)
        if found is None or isinstance(found, Stale):
            if (found or self._stale_in_lru(code)) and not self._outage.should_ask():
                # PostgreSQL failed moments ago: the stale copy now, not after its deadline.
                return self._serve_stale(code, found)
            try:
                cached = await self._from_postgres(code)
            except UNAVAILABLE as exc:
                self._outage.failed(exc)
                link = await self._stale_after_failure(code, found, started)
                if link is None:
                    raise
                return link
            self._outage.answered()
            if generation is not None:
                await self._to_redis(code, cached, generation)
        else:
            cached = found
        if self._all_forgotten <= started and self._forgotten.get(code, 0) <= started:
            self._remember(code, cached)
        return cached if isinstance(cached, CachedLink) else None

    def _remember(self, code: str, link: CachedLink | Absent) -> None:
        now = time.monotonic()
        if isinstance(link, CachedLink):
            if self._links is not None:
                fresh_until = now + self._lru_ttl
                self._links[code] = (fresh_until, fresh_until + self._stale_ttl, link.fields())
        else:
            if self._links is not None and code in self._links:
                del self._links[code]  # gone: its stale copy must never be served
            if self._absent is not None:
                self._absent[code] = now + self._negative_ttl

    def _stale_in_lru(self, code: str) -> CachedLink | None:
        """The LRU's copy of the link while within its stale deadline."""
        entry = self._links.get(code) if self._links is not None else None
        if entry is None or entry[1] <= time.monotonic():
            return None
        return CachedLink(*entry[2])

    def _serve_stale(self, code: str, found: Stale | None) -> CachedLink | None:
        """The stale copy Redis just gave, else the LRU's, counted."""
        if found is not None:
            self._outage.served("redis")
            return found.link
        link = self._stale_in_lru(code)
        if link is not None:
            self._outage.served("lru")
        return link

    async def _stale_after_failure(
        self, code: str, found: Stale | None, started: int
    ) -> CachedLink | None:
        """PostgreSQL failed: a stale copy still there now (an invalidation while
        PostgreSQL was awaited removed it from Redis and from the LRU), else None."""
        if self._all_forgotten > started or self._forgotten.get(code, 0) > started:
            return None
        if found is not None:
            budget = deadline.current()
            if budget is not None and budget.remaining() <= 0:
                # No time to read Redis again (PostgreSQL took the whole budget): the
                # copy read before, which no invalidation heard since has removed.
                return self._serve_stale(code, found)
            # Read Redis again: the entry read before may have been invalidated since.
            again, _ = await self._from_redis(code, generation=False)
            if isinstance(again, CachedLink):
                return again  # refreshed meanwhile (another replica reached PostgreSQL)
            return self._serve_stale(code, again) if isinstance(again, Stale) else None
        return self._serve_stale(code, None)

    async def _from_redis(
        self, code: str, *, generation: bool = True
    ) -> tuple[CachedLink | Absent | Stale | None, bytes | None]:
        """What Redis holds; on a miss or a stale entry, also the code's generation
        (read before PostgreSQL is asked). The generation is None when Redis was not
        asked."""
        if not self._cache.enabled or not self._guard.usable():
            return None, None
        try:
            async with asyncio.timeout(self._redis_call):
                cached = await self._cache.get(code)
                fresh = cached is not None and not isinstance(cached, Stale)
                if generation and not fresh:
                    version = await self._cache.generation(code)
                else:
                    version = None
        except (RedisError, OSError) as exc:
            self._guard.failed(exc)
            return None, None
        self._guard.succeeded()
        if fresh:
            (_REDIS_ABSENT if cached is ABSENT else _REDIS_HIT).inc()
        return cached, version

    async def _to_redis(self, code: str, link: CachedLink | Absent, generation: bytes) -> None:
        try:
            async with asyncio.timeout(self._redis_call):
                await self._cache.put(code, link, generation)
        except (RedisError, OSError) as exc:
            self._guard.failed(exc)
        else:
            self._guard.succeeded()

    async def _from_postgres(self, code: str) -> CachedLink | Absent:
        # Waiting for a connection and the query together get SHORTY_DB_TIMEOUT
        # (asyncio.timeout: no extra task, unlike an acquire timeout), and the request's
        # budget (the pool). A read: retried once on a fresh connection if its own broke.
        own = asyncio.timeout(self._db_timeout)
        try:
            async with own:
                row = await retry.idempotent(lambda: self._pool.fetchrow(_SELECT, code))
        except TimeoutError as exc:
            if own.expired():  # the pool saw a cancellation: the breaker hears it here
                self._postgres.failed(exc)
            raise
        if row is None:
            _PG_ABSENT.inc()
            return ABSENT
        _PG_HIT.inc()
        expires = row["expires_at"].timestamp() if row["expires_at"] else None
        return CachedLink(
            row["id"],
            row["target"],
            row["redirect_type"],
            expires,
            row["disabled"],
            row["max_clicks"],
            row["forward_query"],
            blocked_status(row["blocked_reason"]),
        )
