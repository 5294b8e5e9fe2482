"""The request budget (shorty.resilience.deadline) and the retry rule
(shorty.resilience.retry) on their own: what each wait is given, the backstop, and
when a retry is (not) made."""

from __future__ import annotations

import asyncio
import contextvars
import time

import asyncpg
import pytest

from shorty.resilience import deadline, retry


def run_alone(coro):
    """Run ``coro`` in a fresh context: a budget started by one test never leaks into
    another (each asyncio.run copies the caller's context)."""
    return contextvars.Context().run(asyncio.run, coro)


def test_a_wait_gets_the_smaller_of_its_timeout_and_the_time_left():
    async def scenario():
        assert deadline.current() is None
        budget = deadline.start(0.5)
        assert deadline.current() is budget
        assert budget.bounded(5.0) == pytest.approx(0.5, abs=0.05)
        assert budget.bounded(0.1) == 0.1
        await asyncio.sleep(0.55)
        with pytest.raises(deadline.DeadlineExceeded) as caught:
            budget.bounded(5.0)
        assert isinstance(caught.value, TimeoutError)  # so UNAVAILABLE and OSError catch it
        budget.lift()
        assert budget.bounded(5.0) == 5.0

    run_alone(scenario())


def test_within_ends_a_hung_block_just_past_the_deadline():
    async def scenario():
        started = time.monotonic()
        with pytest.raises(deadline.DeadlineExceeded):
            async with deadline.within(0.3):
                await asyncio.Event().wait()  # a wait nothing bounds
        return time.monotonic() - started

    elapsed = run_alone(scenario())
    print(f"hung block ended after {elapsed * 1000:.0f} ms (deadline 300 ms)")
    assert 0.3 <= elapsed < 0.3 + 0.1


def test_within_shares_the_budget_already_started():
    async def scenario():
        first = deadline.start(0.2)
        async with deadline.within(5.0) as budget:
            assert budget is first  # a second block of the same request: same deadline
        await asyncio.sleep(0.25)
        with pytest.raises(deadline.DeadlineExceeded):
            async with deadline.within(5.0):
                await asyncio.sleep(1)

    run_alone(scenario())


def test_a_timeout_of_the_block_itself_is_not_called_the_deadline():
    async def scenario():
        async with deadline.within(5.0):
            with pytest.raises(TimeoutError) as caught:
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(1)
        assert not isinstance(caught.value, deadline.DeadlineExceeded)

    run_alone(scenario())


def test_full_jitter_stays_within_its_cap():
    assert retry.full_jitter(1, 0.01, 0.1, lambda: 1.0) == 0.01
    assert retry.full_jitter(3, 0.01, 0.1, lambda: 1.0) == 0.04
    assert retry.full_jitter(10, 0.01, 0.1, lambda: 1.0) == 0.1
    assert retry.full_jitter(10, 0.01, 0.1, lambda: 0.0) == 0.0


def test_a_dropped_connection_is_retried_once_then_raised():
    calls = []

    async def dropped_once():
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        return "row"

    assert run_alone(retry.idempotent(dropped_once)) == "row"
    assert len(calls) == 2

    async def always_dropped():
        calls.append(1)
        raise ConnectionResetError

    calls.clear()
    with pytest.raises(ConnectionResetError):
        run_alone(retry.idempotent(always_dropped))
    assert len(calls) == 2  # one retry, not more


@pytest.mark.parametrize(
    "failure",
    [TimeoutError(), asyncpg.UniqueViolationError("duplicate"), ValueError("a bug")],
    ids=["timeout", "answered", "bug"],
)
def test_only_a_dropped_connection_is_retried(failure):
    calls = []

    async def failing():
        calls.append(1)
        raise failure

    with pytest.raises(type(failure)):
        run_alone(retry.idempotent(failing))
    assert len(calls) == 1


def test_no_retry_past_the_budget():
    calls = []

    async def scenario():
        deadline.start(0.05)
        await asyncio.sleep(0.06)  # the budget is spent

        async def dropped():
            calls.append(1)
            raise ConnectionResetError

        await retry.idempotent(dropped, rand=lambda: 1.0)

    with pytest.raises(ConnectionResetError):
        run_alone(scenario())
    assert len(calls) == 1
