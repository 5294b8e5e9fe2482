"""Child processes, started, waited for and stopped with every wait bounded.

One supervisor for whatever runs Shorty's processes: ``shorty dev`` (the API,
redirect service and worker), the end-to-end and operator tests, ``make fuzz``
and the redirect benchmark.

A ``Child`` is one command started at once, its output appended to a log file,
captured line by line (``capture=True``) or left on our own terminal. It is
ready when a check says so (``wait_ready``), and stopped with a signal, then
killed if it has not exited within a grace period (``stop``). What went wrong
is raised with the last lines the child wrote: ``NotReady`` (it exited while
starting, or was not ready in time), ``Stuck`` (it had to be killed), ``Died``
(a watched child exited).

A ``Group`` holds children that run together: it waits until each is ready,
watches for one that exits, and stops them all in reverse order. A child added
with ``make`` (how to start it again) is restarted when it exits, as the group's
``Restart`` policy says: after a backoff that doubles, each restart told in one
line, until it has crashed too often too soon (``GaveUp``).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

TAIL = 40  # lines of a child's output an error shows
_POLL = 0.1  # seconds between two looks at a starting or watched child


class NotReady(Exception):
    """A child exited while starting, or was not ready within its time."""


class Stuck(Exception):
    """A child did not exit within its grace period after the signal; it was killed."""


class Died(Exception):
    """A child that should still run has exited."""

    def __init__(self, child: Child, code: int) -> None:
        super().__init__(_with_tail(f"{child.name} exited with code {code}", child.tail()))
        self.child = child
        self.code = code


class GaveUp(Died):
    """A restarted child crashed ``Restart.give_up`` times in a row, each soon after
    its start: it is not started again."""

    def __init__(self, child: Child, code: int, policy: Restart) -> None:
        Exception.__init__(
            self,
            _with_tail(
                f"{child.name} exited with code {code}: {policy.give_up} crashes in a row,"
                f" each within {policy.quick:g}s of its start; giving up on it",
                child.tail(),
            ),
        )
        self.child = child
        self.code = code


def _with_tail(message: str, tail: str) -> str:
    return f"{message}; its last lines:\n{tail}" if tail else message


class Child:
    """One command in a child process, started when this object is made.

    ``log``: a file the output (stdout and stderr; only stderr with ``stdout=False``,
    for a child whose stdout is a busy access log) is appended to; ``capture``: keep
    the output in ``lines`` instead (read by a thread, so the child never blocks on a
    full pipe); neither: the child writes where we do. ``new_session``: the child
    does not get the signals our terminal sends (Ctrl-C), only the ones we send it.
    """

    process: subprocess.Popen[Any]  # text when capturing, else bytes (never read)

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        capture: bool = False,
        stdout: bool = True,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.log = log
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as out:  # the child holds its own descriptor
                self.process = subprocess.Popen(  # noqa: S603 - commands are our own
                    command,
                    env=env,
                    stdout=out if stdout else subprocess.DEVNULL,
                    stderr=out,
                    start_new_session=new_session,
                )
        elif capture:
            self.process = subprocess.Popen(  # noqa: S603 - commands are our own
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=new_session,
            )
            self._reader = threading.Thread(target=self._read, name=f"{name} output", daemon=True)
            self._reader.start()
        else:
            self.process = subprocess.Popen(  # noqa: S603 - commands are our own
                command, env=env, start_new_session=new_session
            )

    def __repr__(self) -> str:
        return f"<Child {self.name} pid={self.process.pid} returncode={self.process.returncode}>"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def output(self) -> str:
        """What a capturing child has written so far."""
        return "".join(self.lines)

    def tail(self, lines: int = TAIL) -> str:
        """The last ``lines`` lines of the child's output ("" when it is not kept)."""
        if self._reader is not None:
            return "".join(self.lines[-lines:])
        if self.log is None:
            return ""
        try:
            with self.log.open("rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - 64 * 1024))
                last = deque(handle, maxlen=lines)
        except OSError:
            return ""
        return b"".join(last).decode(errors="replace")

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Return once ``check()`` is true (an OSError it raises counts as false).

        ``NotReady`` with the child's last lines if it exits first, or after ``timeout``
        seconds. The child is left as it is: stopping it is the caller's choice.
        """
        self._wait_ready(check, time.monotonic() + timeout, timeout)

    def _wait_ready(self, check: Callable[[], bool], deadline: float, timeout: float) -> None:
        while True:
            if _passes(check):
                return
            code = self.process.poll()
            if code is not None:
                self._drain()
                if _passes(check):  # it said so just before it exited
                    return
                raise NotReady(
                    _with_tail(f"{self.name} exited with code {code} while starting", self.tail())
                )
            if time.monotonic() >= deadline:
                late = f"{self.name} was not ready within {timeout}s"
                raise NotReady(_with_tail(late, self.tail()))
            time.sleep(_POLL)

    def wait(self, timeout: float) -> int:
        """The exit code, once the child exits; if it has not within ``timeout`` seconds,
        kill it and raise ``Stuck`` with its last lines."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Stuck(
                _with_tail(f"{self.name} did not exit within {timeout}s; killed it", self.tail())
            ) from None
        self._drain()
        return code

    def stop(self, grace: float = 30.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (SIGTERM) unless the child has exited, then ``wait(grace)``: the
        exit code (a process the signal ends without a handler gives ``-sig``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.wait(grace)

    def kill(self) -> None:
        """SIGKILL, and wait for it (a killed process cannot linger)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self._drain()

    def _drain(self) -> None:
        """Once the child has exited: read what it still wrote and close the pipe."""
        if self._reader is not None:
            self._reader.join(10)
            if not self._reader.is_alive() and self.process.stdout is not None:
                self.process.stdout.close()


def _passes(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except OSError:
        return False


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: a GET of ``url`` (http://, straight to the host: no proxy)
    answers 200."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    def check() -> bool:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except http.client.HTTPException:  # half an answer: not ready yet
            return False
        finally:
            conn.close()

    return check


def port_open(port: int, host: str = "127.0.0.1") -> Callable[[], bool]:
    """A readiness check: something accepts TCP connections on ``host:port``."""

    def check() -> bool:
        with socket.create_connection((host, port), timeout=0.5):
            return True

    return check


@contextmanager
def held_signals(*signals: int) -> Iterator[None]:
    """SIGTERM and SIGINT (or ``signals``) wait while the block runs, then arrive: for
    a step that must not be cut in half, as starting a child and recording it.

    Held by a handler that notes them, not by the signal mask: a mask would be
    inherited by the children started in the block, which would then never see
    SIGTERM."""
    if threading.current_thread() is not threading.main_thread():
        yield  # Python's signal handlers run in the main thread only
        return
    arrived: list[int] = []
    before = {
        sig: signal.signal(sig, lambda signum, frame: arrived.append(signum))
        for sig in signals or (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(arrived):
            signal.raise_signal(sig)


@dataclass(frozen=True)
class Restart:
    """How a ``Group`` restarts a child that exited.

    The n-th crash in a row waits ``first * 2**(n-1)`` seconds, at most ``cap``,
    before the child starts again. A crash counts as "in a row" when the child had
    run less than ``quick`` seconds; one that ran longer starts the count anew. The
    ``give_up``-th crash in a row is not restarted: the group's watch raises
    ``GaveUp`` (a child that cannot start, say a port taken for good, is then told
    about in seconds, not restarted forever).
    """

    first: float = 0.5
    cap: float = 8.0
    quick: float = 30.0
    give_up: int = 5

    def delay(self, crashes: int) -> float:
        return float(min(self.cap, self.first * 2 ** (crashes - 1)))

    def count(self, crashes: int, ran: float) -> int:
        """The crashes in a row, counting one that came ``ran`` seconds after a start."""
        return crashes + 1 if ran < self.quick else 1

    def told(self, crashes: int) -> str:
        """The end of the line that tells a restart."""
        return (
            f"restarting it in {self.delay(crashes):g}s (crash {crashes} in a row;"
            f" giving up at {self.give_up})"
        )


class _Member:
    """A child of a group, with what it takes to start it again."""

    def __init__(
        self,
        child: Child,
        ready: Callable[[], bool] | None,
        make: Callable[[], Child] | None,
    ) -> None:
        self.child = child
        self.ready = ready
        self.make = make
        self.started = time.monotonic()
        self.crashes = 0  # in a row, each soon after its start
        self.due: float | None = None  # when to start it again, once it has exited


class Group:
    """Children that run together: started in order, stopped in reverse order.

    ``restart``: the policy for children added with ``make``; ``say``: where the
    one line about each restart goes (nowhere by default).
    """

    def __init__(
        self, restart: Restart | None = None, say: Callable[[str], None] | None = None
    ) -> None:
        self._members: list[_Member] = []
        self._restart = restart or Restart()
        self._say = say or (lambda line: None)
        self._stopped = False

    @property
    def children(self) -> list[Child]:
        """The children as they are now (a restarted one replaces the one that exited)."""
        return [member.child for member in self._members]

    def add(
        self,
        child: Child,
        ready: Callable[[], bool] | None = None,
        *,
        make: Callable[[], Child] | None = None,
    ) -> Child:
        """Hold ``child`` (already started); ``ready``: what ``wait_ready`` waits for;
        ``make``: how to start it again when it exits (without: its exit is ``Died``)."""
        self._members.append(_Member(child, ready, make))
        return child

    def wait_ready(self, timeout: float) -> None:
        """Until each child's check passes, all within ``timeout`` seconds (``NotReady``)."""
        deadline = time.monotonic() + timeout
        for member in self._members:
            if member.ready is not None:
                member.child._wait_ready(member.ready, deadline, timeout)

    def check(self) -> None:
        """``Died`` for the first child that has exited and is not to be restarted
        (``GaveUp`` for one that crashed too often); a restartable one that exited is
        started again once its backoff has passed, and said so in one line. Once the
        group is stopped, nothing."""
        if self._stopped:
            return
        now = time.monotonic()
        for member in self._members:
            child = member.child
            if member.due is not None:
                if now >= member.due and member.make is not None:
                    with held_signals():  # a stop now would lose the new child
                        member.child = member.make()
                        member.started, member.due = time.monotonic(), None
                continue
            if child.process.poll() is None:
                continue
            code = child.wait(_POLL)  # its last lines read
            if member.make is None:
                raise Died(child, code)
            ran = now - member.started
            member.crashes = self._restart.count(member.crashes, ran)
            if member.crashes >= self._restart.give_up:
                raise GaveUp(child, code, self._restart)
            member.due = now + self._restart.delay(member.crashes)
            self._say(
                f"{child.name} exited with code {code} after {ran:.1f}s;"
                f" {self._restart.told(member.crashes)}"
            )

    def watch(self, every: float = 0.5, also: Callable[[], None] | None = None) -> NoReturn:
        """Look at the children every ``every`` seconds (sooner when a restart is due),
        restarting those that may be, until one exits for good (``Died``, ``GaveUp``).
        ``also``: called at each look too (what it raises ends the watch)."""
        while True:
            self.check()
            if also is not None:
                also()
            due = [m.due for m in self._members if m.due is not None]
            pause = min([every, *(when - time.monotonic() for when in due)])
            time.sleep(max(pause, 0.0))

    def stop(self, grace: float = 30.0, sig: int = signal.SIGTERM) -> None:
        """Stop every child, the last added first, each given ``grace`` seconds after
        ``sig``; then ``Stuck``, naming each that had to be killed. A child waiting
        for its restart is not started again, nor any child after this."""
        self._stopped = True
        stuck = []
        for member in reversed(self._members):
            member.due = None
            try:
                member.child.stop(grace, sig)
            except Stuck as error:
                stuck.append(str(error))
        if stuck:
            raise Stuck("\n".join(stuck))
