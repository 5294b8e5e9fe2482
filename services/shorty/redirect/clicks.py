"""Click capture: one Redis Stream entry per redirect, written after the response.

The worker turns entries into ``clicks`` rows and ``click_count``. No IP
address is recorded; the referrer is kept as its host only.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

import redis.asyncio as aredis
from redis.exceptions import RedisError
from starlette.datastructures import Headers

log = logging.getLogger(__name__)

STREAM = "shorty:clicks"
STREAM_MAXLEN = 1_000_000  # approximate cap, so an idle worker cannot exhaust Redis memory


def click_fields(code: str, headers: Headers, now_ms: int) -> dict[str, str]:
    referrer = headers.get("referer", "")
    try:
        referrer_host = (urlsplit(referrer).hostname or "")[:255]
    except ValueError:
        referrer_host = ""
    return {
        "code": code,
        "ts": str(now_ms),
        "ref": referrer_host,
        "ua": headers.get("user-agent", "")[:512],
    }


class ClickRecorder:
    def __init__(self, client: aredis.Redis) -> None:
        self._redis = client

    async def record(self, code: str, headers: Headers) -> None:
        fields = click_fields(code, headers, int(time.time() * 1000))
        try:
            await self._redis.xadd(STREAM, fields, maxlen=STREAM_MAXLEN, approximate=True)  # type: ignore[arg-type]
        except RedisError as exc:
            log.warning("click for %s not recorded: %s", code, type(exc).__name__)
