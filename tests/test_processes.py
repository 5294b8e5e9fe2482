"""shorty.processes with real child processes (``python -c ...``): ready, not ready,
a child that ignores SIGTERM, a child that dies, a group stopped in reverse order."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from shorty.processes import (
    Child,
    Died,
    GaveUp,
    Group,
    NotReady,
    Restart,
    Stuck,
    held_signals,
    http_ok,
    port_open,
)
from tests.helpers import free_port

# A child that says it is up, then sleeps; on SIGTERM it writes its name to a shared
# file and exits 0, so the file shows the order children were stopped in.
POLITE = """
import signal, sys, time
name, record = sys.argv[1], sys.argv[2]
def leave(*_):
    with open(record, "a") as out:
        out.write(name + "\\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, leave)
print(name, "up", flush=True)
while True:
    time.sleep(0.05)
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ignoring SIGTERM", flush=True)
while True:
    time.sleep(0.05)
"""

SERVER = """
import socket, sys, time
time.sleep(0.3)
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
while True:
    sock.accept()[0].close()
"""


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def polite(name: str, tmp_path: Path, **options) -> Child:
    """A child that records its name in tmp_path/stopped.txt when SIGTERM stops it."""
    record = tmp_path / "stopped.txt"
    return Child(name, python(POLITE, name, str(record)), **options)


def test_wait_ready_returns_once_the_check_passes(tmp_path):
    port = free_port()
    child = Child("server", python(SERVER, str(port)), log=tmp_path / "server.log")
    try:
        child.wait_ready(port_open(port), 10)
        assert child.alive
        assert child.tail() == "listening\n"
    finally:
        assert child.stop(5) == -signal.SIGTERM  # no handler: the signal ends it
    assert not child.alive


def test_a_child_that_exits_while_starting_is_not_ready_and_its_last_lines_say_why(tmp_path):
    code = "import sys\nfor n in range(100): print('line', n)\nsys.exit(3)"
    child = Child("failing", python(code), log=tmp_path / "failing.log")
    with pytest.raises(NotReady) as raised:
        child.wait_ready(lambda: False, 10)
    message = str(raised.value)
    assert message.startswith("failing exited with code 3 while starting; its last lines:\n")
    shown = message.splitlines()[1:]
    assert shown == [f"line {n}" for n in range(60, 100)]  # the last 40, no more
    assert child.stop(1) == 3


def test_a_child_never_ready_is_not_ready_after_the_timeout_and_left_running(tmp_path):
    child = polite("slow", tmp_path, log=tmp_path / "slow.log")
    try:
        started = time.monotonic()
        with pytest.raises(NotReady, match=r"^slow was not ready within 0.5s; its last lines:"):
            child.wait_ready(http_ok(f"http://127.0.0.1:{free_port()}/readyz"), 0.5)
        assert 0.5 <= time.monotonic() - started < 5
        assert child.alive
    finally:
        assert child.stop(5) == 0


def test_a_check_true_just_before_the_child_exits_counts(tmp_path):
    child = Child("quick", python("print('done')"), capture=True)
    child.process.wait(10)
    child.wait_ready(lambda: "done" in child.output, 0)
    assert child.stop(1) == 0


def test_a_child_ignoring_sigterm_is_killed_after_its_grace_and_stuck_shows_its_lines(tmp_path):
    child = Child("stubborn", python(STUBBORN), log=tmp_path / "stubborn.log")
    child.wait_ready(lambda: "ignoring" in child.tail(), 10)
    started = time.monotonic()
    with pytest.raises(Stuck) as raised:
        child.stop(0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert str(raised.value) == (
        "stubborn did not exit within 0.5s; killed it; its last lines:\nignoring SIGTERM\n"
    )
    assert not child.alive
    assert child.process.returncode == -signal.SIGKILL


def test_captured_output_is_read_whole_and_the_pipe_closed(tmp_path):
    code = "for n in range(20000): print('x' * 20, n)"  # more than a pipe holds
    child = Child("chatty", python(code), capture=True)
    assert child.wait(10) == 0
    assert len(child.lines) == 20000
    assert child.output.endswith("x" * 20 + " 19999\n")
    assert child.process.stdout is not None
    assert child.process.stdout.closed


def test_stdout_false_logs_only_stderr(tmp_path):
    code = "import sys\nprint('access line')\nprint('an error', file=sys.stderr)"
    child = Child("quiet", python(code), log=tmp_path / "quiet.log", stdout=False)
    assert child.wait(10) == 0
    assert (tmp_path / "quiet.log").read_text() == "an error\n"


def test_a_group_stops_its_children_in_reverse_order(tmp_path):
    group = Group()
    for name in ("first", "second", "third"):
        child = polite(name, tmp_path, capture=True)
        group.add(child, lambda child=child: "up" in child.output)
    group.wait_ready(10)
    assert all(child.alive for child in group.children)
    group.stop(5)
    assert (tmp_path / "stopped.txt").read_text().split() == ["third", "second", "first"]
    assert [child.process.returncode for child in group.children] == [0, 0, 0]


def test_a_group_notices_a_child_that_died(tmp_path):
    group = Group()
    group.add(polite("steady", tmp_path, capture=True))
    dying = group.add(
        Child(
            "dying",
            python("import sys, time\ntime.sleep(0.5)\nprint('bye')\nsys.exit(4)"),
            capture=True,
        )
    )
    group.check()  # nothing has exited yet
    started = time.monotonic()
    with pytest.raises(Died) as raised:
        group.watch(every=0.05)
    assert time.monotonic() - started < 10
    assert raised.value.child is dying
    assert raised.value.code == 4
    assert str(raised.value) == "dying exited with code 4; its last lines:\nbye\n"
    group.stop(5)
    assert (tmp_path / "stopped.txt").read_text() == "steady\n"


def test_a_group_stops_every_child_even_past_a_stuck_one_then_names_it(tmp_path):
    group = Group()
    group.add(polite("polite", tmp_path, capture=True), lambda: True)
    stubborn = group.add(Child("stubborn", python(STUBBORN), capture=True))
    stubborn.wait_ready(lambda: "ignoring" in stubborn.output, 10)
    with pytest.raises(Stuck, match=r"^stubborn did not exit within 0.3s; killed it"):
        group.stop(0.3)
    assert not any(child.alive for child in group.children)
    assert (tmp_path / "stopped.txt").read_text() == "polite\n"


def test_a_group_waits_for_all_within_one_timeout(tmp_path):
    group = Group()
    group.add(polite("never", tmp_path, capture=True), lambda: False)
    started = time.monotonic()
    try:
        with pytest.raises(NotReady, match=r"^never was not ready within 0.4s"):
            group.wait_ready(0.4)
        assert time.monotonic() - started < 5
    finally:
        group.stop(5)


# Exits with code 4 after ``sys.argv[1]`` seconds, having said its pid.
CRASHING = """
import os, sys, time
print("pid", os.getpid(), flush=True)
time.sleep(float(sys.argv[1]))
sys.exit(4)
"""


def crashing(after: float) -> Child:
    return Child("crashing", python(CRASHING, str(after)), capture=True)


def test_a_group_restarts_a_child_that_exited_after_a_backoff_and_says_so(tmp_path):
    said: list[str] = []
    group = Group(Restart(first=0.2, cap=1.0, quick=30, give_up=5), say=said.append)
    group.add(polite("steady", tmp_path, capture=True))
    first = group.add(crashing(0.3), make=lambda: crashing(0.3))
    started = time.monotonic()
    try:
        while len(said) < 2 and time.monotonic() - started < 10:
            group.check()
            time.sleep(0.02)
        assert len(said) == 2
        assert re.fullmatch(
            r"crashing exited with code 4 after 0\.\d+s; restarting it in 0.2s"
            r" \(crash 1 in a row; giving up at 5\)",
            said[0],
        )
        assert said[1].endswith("restarting it in 0.4s (crash 2 in a row; giving up at 5)")
        # 0.3 s run, 0.2 s wait, 0.3 s run, then the second crash
        assert 0.8 <= time.monotonic() - started < 5
        assert group.children[1] is not first
        assert group.children[1].pid != first.pid
        assert group.children[0].alive  # the others go on
    finally:
        group.stop(5)
    assert (tmp_path / "stopped.txt").read_text() == "steady\n"


def test_a_group_gives_up_on_a_child_that_keeps_crashing_at_once():
    said: list[str] = []
    group = Group(Restart(first=0.05, cap=0.1, quick=30, give_up=3), say=said.append)
    group.add(crashing(0), make=lambda: crashing(0))
    started = time.monotonic()
    with pytest.raises(GaveUp) as raised:
        group.watch(every=0.05)
    assert time.monotonic() - started < 10
    assert len(said) == 2  # the first two crashes restarted, the third not
    assert str(raised.value).startswith(
        "crashing exited with code 4: 3 crashes in a row, each within 30s of its start;"
        " giving up on it; its last lines:\npid "
    )
    assert isinstance(raised.value, Died)
    group.stop(1)


def test_a_crash_after_a_long_run_starts_the_count_anew():
    said: list[str] = []
    group = Group(Restart(first=0.05, cap=0.05, quick=0.2, give_up=2), say=said.append)
    group.add(crashing(0.3), make=lambda: crashing(0.3))  # runs longer than "quick"
    started = time.monotonic()
    try:
        while len(said) < 3 and time.monotonic() - started < 10:
            group.check()  # with give_up=2, two quick crashes would raise GaveUp
            time.sleep(0.02)
        assert [line.split("(")[1] for line in said] == ["crash 1 in a row; giving up at 2)"] * 3
    finally:
        group.stop(1)


def test_a_stopped_group_starts_no_child_waiting_for_its_restart():
    made: list[Child] = []

    def make() -> Child:
        made.append(crashing(30))
        return made[-1]

    group = Group(Restart(first=0.2, quick=30))
    group.add(crashing(0), make=make)
    group.children[0].process.wait(10)
    group.check()  # the crash seen: a restart is due in 0.2 s
    group.stop(1)
    for _ in range(3):  # past the first backoff, and the next one
        time.sleep(0.25)
        group.check()
    assert made == []


def test_held_signals_arrive_after_the_block():
    got: list[int] = []
    before = signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
    try:
        with held_signals(signal.SIGUSR1):
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.05)
            assert got == []
        time.sleep(0.05)
        assert got == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, before)


def test_a_child_started_while_signals_are_held_still_stops_on_sigterm(tmp_path):
    with held_signals():
        child = polite("held", tmp_path, capture=True)
    child.wait_ready(lambda: "up" in child.output, 10)
    assert child.stop(5) == 0  # a signal mask would have been inherited: Stuck
    assert (tmp_path / "stopped.txt").read_text() == "held\n"
