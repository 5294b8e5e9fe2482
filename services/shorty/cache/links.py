"""Links cached in Redis, so a redirect rarely reaches PostgreSQL.

An entry holds only what the redirect needs; an unknown code is cached as a
short-lived "absent" marker so a flood of random codes stays off PostgreSQL.
Every change made through the API calls ``invalidate``: the Redis entry is
dropped and every redirect replica is told (pub/sub) to drop its own copy.
Any Redis failure is the caller's cue to go to PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum

import redis.asyncio as aredis

from shorty.core.links import LinkState

KEY = "shorty:link:{}"
USES = "shorty:uses:{}"  # uses of a click-limited link (see redirect/limits.py)
INVALIDATIONS = "shorty:invalidate"  # pub/sub channel; each message is one code
_ABSENT = b"-"


class Absent(Enum):
    """The code is known not to exist (a cached miss)."""

    ABSENT = "absent"


ABSENT = Absent.ABSENT


@dataclass(frozen=True, slots=True)
class CachedLink:
    target: str
    redirect_type: int = 302
    expires_at: float | None = None  # POSIX seconds
    disabled: bool = False
    max_clicks: int | None = None
    forward_query: bool = False

    def state_at_timestamp(self, now: float) -> LinkState:
        """DISABLED, EXPIRED or ACTIVE at POSIX time ``now`` (click limits are checked
        separately: the count is not cached)."""
        if self.disabled:
            return LinkState.DISABLED
        if self.expires_at is not None and self.expires_at <= now:
            return LinkState.EXPIRED
        return LinkState.ACTIVE

    def dumps(self) -> bytes:
        return json.dumps(
            [
                self.target,
                self.redirect_type,
                self.expires_at,
                self.disabled,
                self.max_clicks,
                self.forward_query,
            ]
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> CachedLink:
        return cls(*json.loads(raw))


class LinkCache:
    def __init__(self, client: aredis.Redis, ttl: int, negative_ttl: float = 0) -> None:
        self._redis = client
        self._ttl = ttl
        self._negative_ms = int(negative_ttl * 1000)

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    async def get(self, code: str) -> CachedLink | Absent | None:
        """The cached link, ABSENT for a cached miss, None when Redis knows nothing."""
        raw: bytes | None = await self._redis.get(KEY.format(code))  # type: ignore[assignment]
        if raw is None:
            return None
        if raw == _ABSENT:
            return ABSENT
        return CachedLink.loads(raw)

    async def put(self, code: str, link: CachedLink | Absent) -> None:
        if not self.enabled:
            return
        if link is ABSENT:
            if self._negative_ms > 0:
                await self._redis.set(KEY.format(code), _ABSENT, px=self._negative_ms, nx=True)
            return
        await self._redis.set(KEY.format(code), link.dumps(), ex=self._ttl)

    async def invalidate(self, code: str) -> None:
        """Drop the Redis entries and tell every redirect replica to drop its copy."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.delete(KEY.format(code), USES.format(code))
            pipe.publish(INVALIDATIONS, code)
            await pipe.execute()
