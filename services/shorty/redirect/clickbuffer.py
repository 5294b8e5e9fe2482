"""Clicks wait in a bounded buffer and go to the Redis stream in batches.

``add`` never waits: the redirect answers first. A background task writes a
batch when ``batch`` clicks are waiting or every ``interval`` seconds. While
Redis is away the buffer keeps the newest ``capacity`` clicks and counts the
ones it drops; ``close`` writes what is left before the process exits. Every
write is bounded (``write_timeout``): the Redis client's own retries could
otherwise hold one for many times its socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

import redis.asyncio as aredis
from redis.exceptions import RedisError

from shorty.obs.metrics import CLICKS_BUFFERED, CLICKS_DROPPED, CLICKS_FLUSHED
from shorty.redirect.clicks import STREAM, STREAM_MAXLEN, Click

log = logging.getLogger(__name__)
MAX_BACKOFF = 5.0
# ARGV: maxlen, then the batch: clicks separated by RS (\x1e), each one's values in
# FIELDS order separated by US (\x1f); click_of keeps both out of every value. Joining
# strings costs the redirect a sixth of what JSON-encoding the same clicks did. A click
# without exactly eight values (a separator inside one: no producer's but click_of is
# held to that) is skipped and counted, not appended: an error would fail the whole
# batch, which would go back to the buffer and fail again forever.
_APPEND = """
local batch, from, skipped = ARGV[2], 1, 0
local RS, US = string.char(30), string.char(31)
while from <= #batch do
    local stop = string.find(batch, RS, from, true) or (#batch + 1)
    local c, at = {}, from
    for i = 1, 7 do
        local sep = string.find(batch, US, at, true)
        if not sep or sep > stop then c = nil break end
        c[i] = string.sub(batch, at, sep - 1)
        at = sep + 1
    end
    local last = c and string.sub(batch, at, stop - 1)
    if c and not string.find(last, US, 1, true) then
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
            'code', c[1], 'id', c[2], 'ts', c[3], 'ref', c[4], 'ua', c[5], 'vh', c[6],
            'net', c[7], 'cid', last)
    else
        skipped = skipped + 1
    end
    from = stop + 1
end
return skipped
"""


class ClickBuffer:
    def __init__(
        self,
        client: aredis.Redis,
        *,
        capacity: int,
        batch: int,
        interval: float,
        write_timeout: float = 2.0,
    ) -> None:
        self._redis = client
        self.write_timeout = write_timeout
        self._clicks: deque[Click] = deque()
        self.capacity = capacity
        self.batch = batch
        self.interval = interval
        self.dropped = 0
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._writing = 0  # clicks of the write in progress
        self._append = client.register_script(_APPEND)

    def __len__(self) -> int:
        return len(self._clicks)

    def waiting(self) -> int:
        """Clicks in memory: in the buffer and in a write not yet confirmed. What a
        process killed now would lose; ``shorty_click_buffer_size`` reads it at each
        scrape (from the metrics listener's thread: two reads of ints)."""
        return len(self._clicks) + self._writing

    def add(self, click: Click) -> None:
        if len(self._clicks) >= self.capacity:
            self._clicks.popleft()
            self.dropped += 1
            CLICKS_DROPPED.inc()
        self._clicks.append(click)
        if len(self._clicks) >= self.batch:
            self._wake.set()

    def start(self) -> None:
        # Read when scraped, not set at each flush: between flushes (every interval)
        # the gauge would show 0 while clicks wait, and the last scrape before a
        # SIGKILL would hide what the kill lost.
        CLICKS_BUFFERED.set_function(self.waiting)
        self._task = asyncio.create_task(self._run(), name="click-buffer")

    async def _run(self) -> None:
        backoff = self.interval
        while not self._closing:
            ticked = False
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                ticked = True
            self._wake.clear()
            failed = False
            # Woken by size: write full batches. On the interval: write everything.
            while len(self._clicks) >= self.batch or (ticked and self._clicks):
                if await self.flush() == 0:
                    failed = True
                    break
            if failed and not self._closing:
                # Redis is away: wait before trying again (only close() cuts it short).
                backoff = min(backoff * 2, MAX_BACKOFF)
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), backoff)
            else:
                backoff = self.interval

    async def flush(self) -> int:
        """Write up to one batch; on failure the clicks go back to the front."""
        taken = [self._clicks.popleft() for _ in range(min(self.batch, len(self._clicks)))]
        if not taken:
            return 0
        # One command per batch: the clicks travel as one argument and a script appends
        # them, which costs far less client CPU than a pipeline of XADDs.
        payload = "\x1e".join(map("\x1f".join, taken))
        self._writing = len(taken)
        try:
            async with asyncio.timeout(self.write_timeout):
                skipped = int(await self._append(keys=[STREAM], args=[STREAM_MAXLEN, payload]))
        except (RedisError, OSError) as exc:  # OSError includes TimeoutError
            self._writing = 0
            room = self.capacity - len(self._clicks)
            kept = taken[-room:] if room > 0 else []
            lost = len(taken) - len(kept)
            self._clicks.extendleft(reversed(kept))
            if lost:
                self.dropped += lost
                CLICKS_DROPPED.inc(lost)
            log.warning(
                "clicks not written (%d waiting): %s", len(self._clicks), type(exc).__name__
            )
            return 0
        finally:
            self._writing = 0
        if skipped:
            self.dropped += skipped
            CLICKS_DROPPED.inc(skipped)
            log.warning("%d malformed clicks dropped (a separator inside a value)", skipped)
        CLICKS_FLUSHED.inc(len(taken) - skipped)
        return len(taken)

    async def close(self, seconds: float = 5.0) -> None:
        """Stop the task and write what is left, giving up after ``seconds``.

        Nothing is cancelled in the middle of a write (a batch taken off the buffer
        would be lost uncounted): the task finishes its current write and stops,
        and each write is bounded by ``write_timeout`` (a batch that times out goes
        back to the buffer).
        """
        self._closing = True
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            await self._task
        deadline = time.monotonic() + seconds
        while self._clicks and time.monotonic() < deadline:
            if await self.flush() == 0:
                break
        if self._clicks:
            log.warning("%d clicks lost at shutdown: Redis unreachable", len(self._clicks))
