"""The fault proxy does what the resilience tests rely on, against a real Redis."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from tests.faults import Proxy, paused


def client(port: int, timeout: float = 2.0) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=timeout, retry=None)


@pytest.fixture
def proxy(stack):
    socket_path = stack.redis_url.removeprefix("unix://")
    assert Path(socket_path).exists()
    with Proxy(socket_path) as p:
        yield p


def test_bytes_flow_both_ways(proxy):
    c = client(proxy.port)
    assert c.set("shorty:test:proxy", "x")
    assert c.get("shorty:test:proxy") == b"x"
    assert proxy.connections == 1
    c.close()


def test_a_pause_holds_the_answer_until_resumed(proxy):
    c = client(proxy.port, timeout=0.3)
    assert c.ping()
    proxy.pause()
    with pytest.raises(redis.TimeoutError):
        c.ping()
    proxy.resume()
    fresh = client(proxy.port)
    assert fresh.ping()
    c.close()
    fresh.close()


def test_slow_adds_latency_to_each_answer(proxy):
    c = client(proxy.port)
    c.ping()
    proxy.slow(0.2)
    started = time.monotonic()
    c.ping()
    assert time.monotonic() - started >= 0.4  # held on the way there and back
    c.close()


def test_a_cut_drops_connections_and_refuses_until_restored(proxy):
    c = client(proxy.port)
    assert c.ping()
    proxy.cut()
    with pytest.raises(redis.ConnectionError):
        c.ping()
    proxy.restore()
    assert client(proxy.port).ping()


# A client of its own, in a process of its own: PINGs through the proxy every 10 ms
# for ``seconds``, then prints the slowest answer.
PINGER = """
import sys, time, redis
c = redis.Redis(port=int(sys.argv[1]), socket_timeout=5, retry=None)
c.ping()
print("ready", flush=True)
slowest, end = 0.0, time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    started = time.monotonic()
    c.ping()
    slowest = max(slowest, time.monotonic() - started)
    time.sleep(0.01)
print(slowest, flush=True)
"""


def gil_holder(at_least: float) -> int:
    """An ``n`` for which ``sum(range(n))`` holds this process's GIL in one C call (as
    a garbage collection of a large heap does) for at least ``at_least`` seconds."""
    n = 1_000_000
    while True:
        started = time.monotonic()
        sum(range(n))  # no bytecode runs inside: no other thread of ours runs meanwhile
        if time.monotonic() - started >= at_least:
            return n
        n *= 2


def test_the_test_process_stalling_stalls_nothing_forwarded(proxy):
    """The test's own process busy (its collector, a C call holding the GIL) does not
    stall the bytes the proxy forwards between two other processes: a 100 ms stall
    once made a row's Redis look down to the redirect (0.1 s deadline)."""
    n = gil_holder(0.3)
    pinger = subprocess.Popen(
        [sys.executable, "-c", PINGER, str(proxy.port), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert pinger.stdout is not None
        assert pinger.stdout.readline().strip() == "ready"
        held = 0.0
        for _ in range(3):
            started = time.monotonic()
            sum(range(n))
            held = max(held, time.monotonic() - started)
        out, _ = pinger.communicate(timeout=30)
    finally:
        pinger.kill()
        pinger.wait(10)
    assert held >= 0.3
    assert float(out) < held / 2, (out, held)


def state_of(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_paused_stops_a_process_and_always_continues_it():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        seen = []

        def fail_while_stopped() -> None:
            with paused(child.pid):
                seen.append(state_of(child.pid))
                raise RuntimeError("the test failed while the process was stopped")

        with pytest.raises(RuntimeError):
            fail_while_stopped()
        assert seen == ["T"]
        assert state_of(child.pid) in {"S", "R"}
    finally:
        child.kill()
        child.wait(10)
