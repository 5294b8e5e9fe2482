"""Rate limits shared by every replica: one atomic Lua script per check.

A request is checked against several limits at once (its API key, its user,
its client IP). The script allows it only if every limit has room, and only
then spends from all of them, so a refused request costs nothing. Time comes
from the Redis server (TIME), so replicas with skewed clocks agree.

Two algorithms: a token bucket (bursts up to the limit, then a steady rate)
and a sliding-window counter (the current and previous fixed windows,
weighted by overlap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aredis

from shorty.core.limits import Limit

PREFIX = "shorty:rl:"

# KEYS: one hash per limit. ARGV: cost, then (capacity, period_ms) per key.
# Returns allowed, then (remaining, reset_ms, retry_ms) per key.
_BUCKET_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cost = tonumber(ARGV[1])
local tokens, rates, caps, periods = {}, {}, {}, {}
local allowed = 1
for i = 1, #KEYS do
    local capacity = tonumber(ARGV[2 * i])
    local period = tonumber(ARGV[2 * i + 1])
    local rate = capacity / period
    local state = redis.call('HMGET', KEYS[i], 'tokens', 'ts')
    local have = tonumber(state[1])
    if have == nil then
        have = capacity
    else
        have = math.min(capacity, have + math.max(0, now - tonumber(state[2])) * rate)
    end
    tokens[i], rates[i], caps[i], periods[i] = have, rate, capacity, period
    if have < cost then allowed = 0 end
end
local out = {allowed}
for i = 1, #KEYS do
    if allowed == 1 then tokens[i] = tokens[i] - cost end
    redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i]), 'ts', now)
    redis.call('PEXPIRE', KEYS[i], periods[i])
    local retry = 0
    if tokens[i] < cost then retry = math.ceil((cost - tokens[i]) / rates[i]) end
    out[#out + 1] = math.floor(tokens[i])
    out[#out + 1] = math.ceil((caps[i] - tokens[i]) / rates[i])
    out[#out + 1] = retry
end
return out
"""

# Same calling convention; each hash holds a count per fixed window index.
_WINDOW_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local cost = tonumber(ARGV[1])
local estimates, currents, caps, windows = {}, {}, {}, {}
local allowed = 1
for i = 1, #KEYS do
    local limit = tonumber(ARGV[2 * i])
    local window = tonumber(ARGV[2 * i + 1])
    local current = math.floor(now / window)
    local counts = redis.call('HMGET', KEYS[i], tostring(current), tostring(current - 1))
    local elapsed = (now % window) / window
    local estimate = (tonumber(counts[2]) or 0) * (1 - elapsed) + (tonumber(counts[1]) or 0)
    estimates[i], currents[i], caps[i], windows[i] = estimate, current, limit, window
    if estimate + cost > limit then allowed = 0 end
end
local out = {allowed}
for i = 1, #KEYS do
    local window, current = windows[i], currents[i]
    if allowed == 1 then
        redis.call('HINCRBY', KEYS[i], tostring(current), cost)
        estimates[i] = estimates[i] + cost
    end
    redis.call('HDEL', KEYS[i], tostring(current - 2))
    redis.call('PEXPIRE', KEYS[i], 2 * window)
    local left = window - (now % window)
    local retry = 0
    if estimates[i] + cost > caps[i] then retry = left end
    out[#out + 1] = math.max(0, math.floor(caps[i] - estimates[i]))
    out[#out + 1] = left
    out[#out + 1] = retry
end
return out
"""

ALGORITHMS = {"token_bucket": _BUCKET_SCRIPT, "sliding_window": _WINDOW_SCRIPT}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one limit: what is left, and when it refills."""

    limit: Limit
    remaining: int
    reset: float  # seconds until the limit is whole again (or the window ends)
    retry_after: float  # seconds until this request would fit; 0 if it does


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    verdicts: tuple[Verdict, ...]

    @property
    def tightest(self) -> Verdict | None:
        """The limit with the least room: what the RateLimit-* headers report."""
        return min(self.verdicts, key=lambda v: (v.remaining, -v.reset), default=None)

    @property
    def retry_after(self) -> float:
        return max((v.retry_after for v in self.verdicts), default=0.0)


class RedisLimits:
    def __init__(self, client: aredis.Redis, algorithm: str = "token_bucket") -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}")
        self._script = client.register_script(ALGORITHMS[algorithm])
        self.algorithm = algorithm

    async def check(self, checks: Sequence[tuple[str, Limit]], cost: int = 1) -> Decision:
        """Spend ``cost`` from every (key, limit) if all have room."""
        keys = [PREFIX + self.algorithm[0] + ":" + key for key, _ in checks]
        args: list[int] = [cost]
        for _, limit in checks:
            args += [limit.count, limit.period * 1000]
        reply = await self._script(keys=keys, args=args)
        verdicts = tuple(
            Verdict(limit, int(reply[1 + 3 * i]), reply[2 + 3 * i] / 1000, reply[3 + 3 * i] / 1000)
            for i, (_, limit) in enumerate(checks)
        )
        return Decision(bool(reply[0]), verdicts)
