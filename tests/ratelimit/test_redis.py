"""The shared limiter on a real Redis: atomic counts, all-or-nothing, fallback."""

import asyncio

import pytest
import redis.asyncio as aredis
from prometheus_client import REGISTRY

from shorty import embedded
from shorty.core.limits import Limit
from shorty.ratelimit.limiter import Limiter, headers
from shorty.ratelimit.redis import RedisLimits
from tests.conftest import ROOT

ALGORITHMS = ["token_bucket", "sliding_window"]


def run(redis_url, scenario, algorithm="token_bucket", replicas=1):
    async def go():
        client = aredis.Redis.from_url(redis_url)
        try:
            return await scenario(Limiter(RedisLimits(client, algorithm), replicas=replicas))
        finally:
            await client.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_fifty_concurrent_checks_against_ten_per_minute_allow_exactly_ten(clean, algorithm):
    limit = Limit(10, 60)

    async def scenario(limiter):
        decisions = await asyncio.gather(*(limiter.check([("k", limit)]) for _ in range(50)))
        return [d.allowed for d in decisions]

    allowed = run(clean.redis_url, scenario, algorithm)
    assert allowed.count(True) == 10


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_refused_request_spends_nothing_anywhere(clean, algorithm):
    tight, loose = Limit(2, 60), Limit(100, 60)

    async def scenario(limiter):
        for _ in range(5):
            await limiter.check([("tight", tight), ("loose", loose)])
        return await limiter.check([("loose", loose)])

    alone = run(clean.redis_url, scenario, algorithm)
    # Only the two allowed requests spent from "loose"; this one makes three.
    assert alone.allowed
    assert alone.verdicts[0].remaining == 97


def test_headers_and_retry_after(clean):
    limit = Limit(3, 60)

    async def scenario(limiter):
        return [await limiter.check([("h", limit)]) for _ in range(4)]

    decisions = run(clean.redis_url, scenario)
    first, last = headers(decisions[0]), headers(decisions[3])
    assert first == {"RateLimit-Limit": "3", "RateLimit-Remaining": "2", "RateLimit-Reset": "20"}
    assert last["RateLimit-Remaining"] == "0"
    assert last["Retry-After"] == "20"  # one token every 20 s


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_check_can_cost_several(clean, algorithm):
    """A bulk of N links spends N (issue #12 item 10)."""
    limit = Limit(10, 60)

    async def scenario(limiter):
        return [await limiter.check([("c", limit)], cost) for cost in (8, 3, 2, 1)]

    decisions = run(clean.redis_url, scenario, algorithm)
    assert [d.allowed for d in decisions] == [True, False, True, False]
    assert decisions[0].verdicts[0].remaining == 2
    assert decisions[2].verdicts[0].remaining == 0


def test_tokens_come_back_at_the_rate(clean):
    limit = Limit(2, 1)  # two a second

    async def scenario(limiter):
        spent = [(await limiter.check([("r", limit)])).allowed for _ in range(3)]
        await asyncio.sleep(0.6)  # a token (0.5 s each) is back
        return spent, (await limiter.check([("r", limit)])).allowed

    assert run(clean.redis_url, scenario) == ([True, True, False], True)


def test_sliding_window_counts_per_window(clean):
    limit = Limit(3, 1)

    async def scenario(limiter):
        return [(await limiter.check([("w", limit)])).allowed for _ in range(4)]

    assert run(clean.redis_url, scenario, "sliding_window") == [True, True, True, False]


@pytest.fixture
def stopped_redis():
    server, url = embedded.start_redis(ROOT / ".shorty-data" / "test-ratelimit")
    server.shutdown(nosave=True)
    yield url
    server._cleanup()


def test_without_redis_each_replica_enforces_its_share(stopped_redis):
    before = REGISTRY.get_sample_value("shorty_ratelimit_fallback_total") or 0

    async def scenario(limiter):
        return [(await limiter.check([("f", Limit(10, 60))])).allowed for _ in range(8)]

    allowed = run(stopped_redis, scenario, replicas=2)
    assert allowed == [True] * 5 + [False] * 3  # 10 across 2 replicas: 5 here
    assert (REGISTRY.get_sample_value("shorty_ratelimit_fallback_total") or 0) - before == 8


def test_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown algorithm"):
        RedisLimits(None, "leaky")  # type: ignore[arg-type]


def test_without_redis_a_check_spends_its_cost_from_all_or_from_none(stopped_redis):
    tight, loose = Limit(5, 60), Limit(100, 60)

    async def scenario(limiter):
        both = [("t", tight), ("l", loose)]
        return [
            (await limiter.check(both, 4)).allowed,  # t: 1 left, l: 96
            (await limiter.check(both, 4)).allowed,  # t refuses: l keeps its 96
            (await limiter.check([("l", loose)], 96)).allowed,
            (await limiter.check([("l", loose)])).allowed,
        ]

    assert run(stopped_redis, scenario) == [True, False, True, False]
