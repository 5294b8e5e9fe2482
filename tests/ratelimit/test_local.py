import pytest

from shorty.ratelimit.local import TokenBuckets


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_burst_then_refill_at_the_rate():
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") == pytest.approx(0.5)


def test_keys_are_independent():
    buckets = TokenBuckets(rate=1.0, burst=1, clock=Clock())
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0


def test_tokens_never_exceed_the_burst():
    clock = Clock()
    buckets = TokenBuckets(rate=10.0, burst=2, clock=clock)
    buckets.take("a")
    clock.now += 3600
    assert [buckets.take("a") > 0 for _ in range(3)] == [False, False, True]


def test_memory_is_bounded():
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=100, clock=Clock())
    for i in range(1000):
        buckets.take(f"client-{i}")
    assert len(buckets._buckets) == 100


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_parameters(rate, burst):
    with pytest.raises(ValueError, match="rate must be positive"):
        TokenBuckets(rate=rate, burst=burst)


def test_a_take_can_cost_several_tokens():
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=10, clock=clock)
    assert buckets.take("a", 8) == 0.0
    assert buckets.take("a", 3) == pytest.approx(1.0)  # 2 left: one more to earn
    assert buckets.take("a", 2) == 0.0  # the refused take spent nothing
    assert buckets.take("a") == pytest.approx(1.0)


def test_a_cost_above_the_burst_never_fits():
    clock = Clock()
    buckets = TokenBuckets(rate=1.0, burst=5, clock=clock)
    clock.now += 3600
    assert buckets.take("a", 6) == pytest.approx(1.0)  # a whole bucket is still one short
    assert buckets.take("a", 5) == 0.0


def test_wait_says_when_without_spending():
    clock = Clock()
    buckets = TokenBuckets(rate=2.0, burst=4, clock=clock)
    assert buckets.wait("a", 4) == 0.0
    assert buckets.wait("a", 5) == pytest.approx(0.5)
    assert buckets.take("a", 4) == 0.0  # the waits took nothing
    assert buckets.wait("a") == pytest.approx(0.5)
