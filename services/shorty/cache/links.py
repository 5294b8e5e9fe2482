"""Links cached in Redis, so a redirect rarely reaches PostgreSQL.

An entry holds only what the redirect needs. Any Redis failure is the
caller's cue to go to PostgreSQL: the cache never decides an answer alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import redis.asyncio as aredis

from shorty.core.links import Link, LinkState

KEY = "shorty:link:{}"


@dataclass(frozen=True, slots=True)
class CachedLink:
    target: str
    redirect_type: int
    expires_at: float | None
    disabled: bool

    @classmethod
    def of(cls, link: Link) -> CachedLink:
        expires = link.expires_at.timestamp() if link.expires_at else None
        return cls(link.target, link.redirect_type, expires, link.disabled)

    def state_at(self, now: datetime) -> LinkState:
        if self.disabled:
            return LinkState.DISABLED
        if self.expires_at is not None and self.expires_at <= now.timestamp():
            return LinkState.EXPIRED
        return LinkState.ACTIVE

    def dumps(self) -> bytes:
        return json.dumps(
            [self.target, self.redirect_type, self.expires_at, self.disabled]
        ).encode()

    @classmethod
    def loads(cls, raw: bytes) -> CachedLink:
        target, redirect_type, expires_at, disabled = json.loads(raw)
        return cls(target, redirect_type, expires_at, disabled)


class LinkCache:
    def __init__(self, client: aredis.Redis, ttl: int) -> None:
        self._redis = client
        self._ttl = ttl

    async def get(self, code: str) -> CachedLink | None:
        raw: bytes | None = await self._redis.get(KEY.format(code))  # type: ignore[assignment]
        return CachedLink.loads(raw) if raw is not None else None

    async def put(self, code: str, link: CachedLink) -> None:
        if self._ttl > 0:
            await self._redis.set(KEY.format(code), link.dumps(), ex=self._ttl)

    async def forget(self, code: str) -> None:
        await self._redis.delete(KEY.format(code))
