"""shorty.processes with real child processes (``python -c ...``): ready, not ready,
a child that ignores SIGTERM, a child that dies, a group stopped in reverse order."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from shorty.processes import Child, Died, Group, NotReady, Stuck, http_ok, port_open
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
