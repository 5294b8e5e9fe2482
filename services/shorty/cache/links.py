"""Links cached in Redis, so a redirect rarely reaches PostgreSQL.

An entry holds only what the redirect needs and until when it is fresh; an
unknown code is cached as a short-lived "absent" marker so a flood of random
codes stays off PostgreSQL. A link's entry outlives its freshness by
``stale_ttl`` seconds: past ``ttl`` it is read as ``Stale``, which the redirect
serves only when PostgreSQL cannot be reached (serve stale on error).
Every change made through the API calls ``invalidate``: the Redis entry is
dropped, the code's generation counter is bumped, and every redirect replica
is told (pub/sub) to drop its own copy. A reader writes what it found in
PostgreSQL back to Redis only if the generation it saw before reading is still
current, so a lookup that raced a change cannot put the old link back.
Any Redis failure is the caller's cue to go to PostgreSQL.
"""

from __future__ import annotations

import json
import time
from enum import Enum
from typing import NamedTuple

import redis.asyncio as aredis

from shorty.core.links import LinkState, state_of

KEY = "shorty:link:v4:{}"  # the version changes with the value's layout
# The previous layout's key, still deleted by invalidation: replicas of the last
# release read it during a rolling upgrade.
PREVIOUS_KEY = "shorty:link:v3:{}"
GENERATION = "shorty:gen:{}"  # bumped by every change to the code's link
GENERATION_TTL = 86_400
USES = "shorty:uses:{}"  # uses of a click-limited link (see redirect/limits.py)
INVALIDATIONS = "shorty:invalidate"  # pub/sub channel; each message is one code
_ABSENT = b"-"


class Absent(Enum):
    """The code is known not to exist (a cached miss)."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


# Write the entry only if the generation is still the one read before PostgreSQL.
_PUT_IF_CURRENT = """
if (redis.call('GET', KEYS[2]) or '') == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return 1
end
return 0
"""


class CachedLink(NamedTuple):
    """What a redirect needs of a link. A named tuple: built on every LRU hit, and
    a frozen dataclass costs five times as much to build."""

    id: int
    target: str
    redirect_type: int = 302
    expires_at: float | None = None  # POSIX seconds
    disabled: bool = False
    max_clicks: int | None = None
    forward_query: str = "off"
    blocked: int = 0  # 0, or the status a blocked link answers (410, 451)

    def state_at_timestamp(self, now: float) -> LinkState:
        """BLOCKED, DISABLED, EXPIRED or ACTIVE at POSIX time ``now`` (click limits are
        checked separately: the count is not cached)."""
        return state_of(self.disabled, self.expires_at, now, self.blocked != 0)

    def fields(self) -> tuple[int, str, int, float | None, bool, int | None, str, int]:
        """The fields as a plain tuple of atoms: what the process LRU keeps, because
        the garbage collector stops tracking plain tuples of atoms (100,000 tracked
        objects made each full collection pause the service for ~30 ms)."""
        return tuple(self)  # type: ignore[return-value]


class Stale(NamedTuple):
    """A link whose Redis entry is past its freshness: for when PostgreSQL cannot answer."""

    link: CachedLink


def encode(link: CachedLink, fresh_until: float) -> bytes:
    """A Redis entry: ``[fresh_until, *link.fields()]``, ``fresh_until`` in POSIX seconds."""
    return json.dumps([round(fresh_until, 3), *link.fields()]).encode()


def decode(raw: bytes) -> tuple[float, CachedLink]:
    """``(fresh_until, link)`` of what ``encode`` wrote; ValueError for anything else."""
    entry = json.loads(raw)
    if (
        not isinstance(entry, list)
        or len(entry) != 1 + len(CachedLink._fields)
        or not isinstance(entry[0], int | float)
        or not isinstance(entry[1], int)
        or not isinstance(entry[2], str)
    ):
        raise ValueError("not a cached link")
    return float(entry[0]), CachedLink(*entry[1:])


class LinkCache:
    def __init__(
        self, client: aredis.Redis, ttl: int, negative_ttl: float = 0, stale_ttl: int = 0
    ) -> None:
        """``ttl``: seconds a link's entry is fresh (0: no entries); ``stale_ttl``:
        seconds it is kept past that, read as ``Stale``; ``negative_ttl``: seconds a
        miss is remembered."""
        self._redis = client
        self._ttl = ttl
        self._stale_ttl = stale_ttl
        self._life_ms = (ttl + stale_ttl) * 1000
        self._negative_ms = int(negative_ttl * 1000)
        self._put_if_current = client.register_script(_PUT_IF_CURRENT)

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    async def get(self, code: str) -> CachedLink | Absent | Stale | None:
        """The cached link while fresh, then ``Stale(link)``; ABSENT for a cached
        miss; None when Redis knows nothing."""
        raw: bytes | None = await self._redis.get(KEY.format(code))  # type: ignore[assignment]
        if raw is None:
            return None
        if raw == _ABSENT:
            return ABSENT
        try:
            fresh_until, link = decode(raw)
        except (ValueError, TypeError):  # not ours, or damaged: ask PostgreSQL
            return None
        if fresh_until > time.time():
            return link
        return Stale(link) if self._stale_ttl > 0 else None

    async def generation(self, code: str) -> bytes:
        """The code's generation: read before asking PostgreSQL, handed to ``put``."""
        value: bytes | None = await self._redis.get(GENERATION.format(code))  # type: ignore[assignment]
        return value or b""

    async def put(self, code: str, link: CachedLink | Absent, generation: bytes) -> bool:
        """Cache what PostgreSQL said, unless the link changed since ``get``."""
        if link is ABSENT:
            value, ttl_ms = _ABSENT, self._negative_ms
        elif self._ttl > 0:
            value, ttl_ms = encode(link, time.time() + self._ttl), self._life_ms
        else:
            return False
        if ttl_ms <= 0:
            return False
        keys = [KEY.format(code), GENERATION.format(code)]
        written = await self._put_if_current(keys=keys, args=[generation, value, ttl_ms])
        return bool(written)

    async def invalidate(self, code: str) -> None:
        """Drop the Redis entries, bump the generation, and tell every replica."""
        await self.invalidate_many([code])

    async def invalidate_many(self, codes: list[str]) -> None:
        """``invalidate`` for several codes in one round trip."""
        if not codes:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for code in codes:
                generation = GENERATION.format(code)
                pipe.incr(generation)
                pipe.expire(generation, GENERATION_TTL)
                pipe.delete(KEY.format(code), PREVIOUS_KEY.format(code), USES.format(code))
                pipe.publish(INVALIDATIONS, code)
            await pipe.execute()
