"""Cost of one rate-limit check against local Redis (target: p99 under 1 ms).

A check is what the API makes once per request: one Lua call over three limits
(key, user, IP). Measured one at a time (latency) for each algorithm, with the
embedded Redis unless SHORTY_REDIS_URL is set. Writes bench/results/ratelimit.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import redis.asyncio as aredis

from shorty import embedded
from shorty.core.limits import Limit
from shorty.ratelimit.redis import ALGORITHMS, RedisLimits

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / ".shorty-data" / "bench"
CHECKS = 20_000
LIMITS = (Limit(1_000_000, 60), Limit(1_000_000, 60), Limit(1_000_000, 60))


async def measure(url: str, algorithm: str) -> dict[str, float]:
    client = aredis.Redis.from_url(url)
    limits = RedisLimits(client, algorithm)
    try:
        durations = []
        for i in range(CHECKS):
            keys = [(f"bench:key:{i % 500}", LIMITS[0]), (f"bench:user:{i % 50}", LIMITS[1])]
            keys.append((f"bench:ip:{i % 1000}", LIMITS[2]))
            started = time.perf_counter()
            await limits.check(keys)
            durations.append(time.perf_counter() - started)
    finally:
        await client.aclose()
    durations.sort()
    return {
        "checks": CHECKS,
        "p50_ms": round(statistics.median(durations) * 1000, 3),
        "p99_ms": round(durations[int(len(durations) * 0.99)] * 1000, 3),
        "max_ms": round(durations[-1] * 1000, 3),
    }


def main() -> None:
    url = os.environ.get("SHORTY_REDIS_URL")
    DATA.mkdir(parents=True, exist_ok=True)
    servers = embedded.start(DATA, postgres=False, redis=url is None)
    url = url or servers.redis_url
    assert url is not None
    try:
        rows = {algorithm: asyncio.run(measure(url, algorithm)) for algorithm in ALGORITHMS}
    finally:
        servers.stop()
    print(f"{'algorithm':<16}{'checks':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for algorithm, row in rows.items():
        print(
            f"{algorithm:<16}{row['checks']:>8}{row['p50_ms']:>9.3f}"
            f"{row['p99_ms']:>9.3f}{row['max_ms']:>9.3f}"
        )
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    payload = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows}
    (results / "ratelimit.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
