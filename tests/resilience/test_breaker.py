"""The breaker's state machine, on a clock the test moves (no sleeps)."""

import logging

import pytest
from prometheus_client import REGISTRY

from shorty.resilience.breaker import Breaker, BreakerOpen


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold=3, cooldown=2.0, dependency="test-dep"):
    clock = Clock()
    return Breaker(dependency, threshold=threshold, cooldown=cooldown, clock=clock), clock


def gauge(dependency="test-dep"):
    return REGISTRY.get_sample_value("shorty_breaker_state", {"dependency": dependency})


def moves(to, dependency="test-dep"):
    labels = {"dependency": dependency, "to": to}
    return REGISTRY.get_sample_value("shorty_breaker_transitions_total", labels) or 0.0


def test_opens_after_threshold_failures_in_a_row_only():
    breaker, _ = make(threshold=3)
    for _ in range(2):
        assert breaker.allow()
        breaker.failed(TimeoutError())
    assert breaker.allow()
    breaker.succeeded()  # a success in between starts the count anew
    for _ in range(2):
        breaker.failed(TimeoutError())
    assert breaker.state == "closed"
    breaker.failed(TimeoutError())
    assert breaker.state == "open"
    assert not breaker.allow()


def test_open_refuses_until_the_cooldown_then_lets_one_probe():
    breaker, clock = make(threshold=1, cooldown=2.0)
    breaker.failed(OSError())
    assert breaker.retry_in() == pytest.approx(2.0)
    clock.now += 1.9
    assert not breaker.allow()
    with pytest.raises(BreakerOpen) as refused:
        breaker.check()
    assert refused.value.dependency == "test-dep"
    assert refused.value.retry_in == pytest.approx(0.1)
    clock.now += 0.2
    assert breaker.allow()  # the probe
    assert breaker.state == "half-open"
    assert not breaker.allow()  # only one at a time
    assert not breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))


def test_a_failed_probe_opens_it_for_another_cooldown():
    breaker, clock = make(threshold=2, cooldown=5.0)
    breaker.failed(OSError())
    breaker.failed(OSError())
    clock.now += 5.0
    assert breaker.allow()
    breaker.failed(TimeoutError())  # one failure is enough while half-open
    assert breaker.state == "open"
    clock.now += 4.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    assert breaker.state == "half-open"


def test_a_probe_without_a_verdict_gives_its_turn_back():
    breaker, clock = make(threshold=1, cooldown=1.0)
    breaker.failed(OSError())
    clock.now += 1.0
    assert breaker.allow()
    assert not breaker.allow()
    breaker.released()  # cancelled: nothing learnt
    assert breaker.state == "half-open"
    assert breaker.allow()
    assert not breaker.allow()


def test_a_probe_that_never_reports_is_replaced_after_the_cooldown():
    breaker, clock = make(threshold=1, cooldown=1.0)
    breaker.failed(OSError())
    clock.now += 1.0
    assert breaker.allow()
    clock.now += 0.5
    assert not breaker.allow()
    clock.now += 0.5
    assert breaker.allow()


def test_late_reports_while_open_change_nothing():
    breaker, clock = make(threshold=1, cooldown=3.0)
    breaker.failed(OSError())
    breaker.succeeded()  # a call let through before it opened
    breaker.failed(OSError())  # another one: the cool-down is not restarted
    assert breaker.state == "open"
    clock.now += 3.0
    assert breaker.allow()


def test_a_zero_cooldown_never_opens():
    breaker, _ = make(threshold=1, cooldown=0)
    for _ in range(10):
        breaker.failed(OSError())
        assert breaker.allow()
    assert breaker.state == "closed"


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="threshold must be at least 1"):
        Breaker("x", threshold=0, cooldown=1)
    with pytest.raises(ValueError, match="threshold must be at least 1"):
        Breaker("x", threshold=1, cooldown=-1)


def test_state_and_transitions_are_metrics_and_one_log_line_each(caplog):
    breaker, clock = make(threshold=1, cooldown=1.0, dependency="metrics-dep")
    before = {to: moves(to, "metrics-dep") for to in ("open", "half-open", "closed")}
    assert gauge("metrics-dep") == 0
    with caplog.at_level(logging.INFO, logger="shorty.resilience.breaker"):
        breaker.failed(ConnectionRefusedError())
        assert gauge("metrics-dep") == 1
        breaker.failed(ConnectionRefusedError())  # already open: no transition
        clock.now += 1.0
        assert breaker.allow()
        assert gauge("metrics-dep") == 2
        breaker.succeeded()
        assert gauge("metrics-dep") == 0
    after = {to: moves(to, "metrics-dep") for to in ("open", "half-open", "closed")}
    assert {to: after[to] - before[to] for to in after} == {
        "open": 1,
        "half-open": 1,
        "closed": 1,
    }
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        (
            "WARNING",
            "metrics-dep breaker open: a call in a row failed, the last with"
            " ConnectionRefusedError;"
            " calls refused for 1 s",
        ),
        ("INFO", "metrics-dep breaker half-open: cool-down over, one call probes"),
        ("INFO", "metrics-dep breaker closed: the probe succeeded"),
    ]


def test_an_answer_seen_elsewhere_closes_it_before_the_cooldown(caplog):
    breaker, _ = make(threshold=2, cooldown=30.0, dependency="elsewhere-dep")
    closed = moves("closed", "elsewhere-dep")
    breaker.failed(OSError())
    breaker.answered_elsewhere("it answered")  # closed: the count starts anew
    breaker.failed(OSError())
    assert breaker.state == "closed"
    breaker.failed(OSError())
    assert breaker.state == "open"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="shorty.resilience.breaker"):
        breaker.answered_elsewhere("the subscription stands")
    assert breaker.state == "closed"  # not 30 s later
    assert breaker.allow()
    assert gauge("elsewhere-dep") == 0
    assert moves("closed", "elsewhere-dep") - closed == 1
    assert [r.getMessage() for r in caplog.records] == [
        "elsewhere-dep breaker closed: the subscription stands"
    ]
    breaker.answered_elsewhere("again")  # already closed: no transition
    assert moves("closed", "elsewhere-dep") - closed == 1
