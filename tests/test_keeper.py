"""The keeper's policy with real processes standing for the embedded servers: one that
dies is started again after the backoff and said so, a start that fails is one more
crash, and too many quick crashes in a row are ``ServerLost``."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from shorty.keeper import Keeper, ServerLost
from shorty.processes import Restart


class Server:
    """A process that sleeps (a server that runs until it is killed); ``start`` starts
    another one, or fails while ``failing`` starts are left."""

    def __init__(self, failing: int = 0) -> None:
        self.failing = failing
        self.starts = 0
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(self) -> None:
        self.starts += 1
        if self.failing:
            self.failing -= 1
            raise RuntimeError("the socket is taken")
        self.process = self._spawn()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


def until(condition, keeper: Keeper, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        keeper.check()
        time.sleep(0.02)


def test_a_server_that_died_is_started_again_after_the_backoff_and_said_so():
    said: list[str] = []
    keeper = Keeper(Restart(first=0.2, cap=1.0, quick=30, give_up=5), say=said.append)
    dying, steady = Server(), Server()
    keeper.add("redis", dying.alive, dying.start)
    keeper.add("postgres", steady.alive, steady.start)
    try:
        first = dying.process.pid
        dying.kill()
        killed = time.monotonic()
        until(lambda: dying.starts == 1, keeper)
        assert 0.2 <= time.monotonic() - killed < 5
        assert dying.alive()
        assert dying.process.pid != first
        assert len(said) == 1
        assert re.fullmatch(
            r"redis exited after \d+\.\ds; restarting it in 0.2s"
            r" \(crash 1 in a row; giving up at 5\)",
            said[0],
        )
        assert steady.starts == 0  # the other one is left alone
        keeper.check()
        assert len(said) == 1  # running again: nothing more to say
    finally:
        dying.kill()
        steady.kill()


def test_a_failed_start_is_one_more_crash_and_too_many_are_server_lost():
    said: list[str] = []
    keeper = Keeper(Restart(first=0.05, cap=0.1, quick=30, give_up=3), say=said.append)
    server = Server(failing=5)
    keeper.add("postgres", server.alive, server.start)
    server.kill()
    started = time.monotonic()
    with pytest.raises(ServerLost) as raised:
        until(lambda: False, keeper)
    assert time.monotonic() - started < 5
    assert server.starts == 2  # the third crash is not restarted
    assert said[0].endswith("restarting it in 0.05s (crash 1 in a row; giving up at 3)")
    assert said[1] == (
        "postgres did not start again (the socket is taken);"
        " restarting it in 0.1s (crash 2 in a row; giving up at 3)"
    )
    assert str(raised.value) == (
        "postgres did not start again (the socket is taken): 3 crashes in a row,"
        " each within 30s of its start; giving up on it"
    )


def test_a_server_that_ran_long_starts_the_count_anew():
    said: list[str] = []
    keeper = Keeper(Restart(first=0.05, cap=0.05, quick=0.2, give_up=2), say=said.append)
    server = Server()
    keeper.add("redis", server.alive, server.start)
    try:
        for turn in range(1, 3):  # with give_up=2, two quick crashes would be ServerLost
            time.sleep(0.25)  # longer than "quick"
            server.kill()
            until(lambda turn=turn: server.starts == turn, keeper)
        assert [line.split("(")[1] for line in said] == ["crash 1 in a row; giving up at 2)"] * 2
    finally:
        server.kill()
