"""Real faults for the resilience tests: a TCP proxy on loopback the test controls,
and pausing a server process.

``Proxy`` sits between a service and PostgreSQL or Redis (give the service the
proxy's port on 127.0.0.1; the server may listen on TCP or on a Unix socket). It
forwards bytes both ways until told otherwise:

- ``pause()``: accept connections and data but forward nothing, as a server under
  SIGSTOP does (the bytes wait and flow again on ``resume()``);
- ``slow(seconds)``: hold every chunk that long before forwarding it;
- ``cut()``: close every connection and refuse new ones (a crash);
  ``restore()`` lets connections in again.

It runs in a process of its own (this file run as a script), driven line by line
over its stdin and stdout, so a test drives it from synchronous code while the
services under test run as processes. Not a thread of the test's process: the
test's garbage collector and its threads holding the GIL stalled every byte the
proxy forwarded for 100 ms and more, a fault of its own that no row asked for
(a 0.1 s Redis deadline in the redirect saw it as Redis down). ``paused(pid)``
SIGSTOPs a process and always SIGCONTs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

CHUNK = 65_536
ANSWER_WITHIN = 10.0  # seconds the proxy process has to answer a command


class Proxy:
    def __init__(self, target: int | str) -> None:
        """``target``: a TCP port on 127.0.0.1, or the path of a Unix socket (the
        embedded servers listen on one)."""
        self.target = target
        self.port = 0
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Proxy:
        where = f"tcp:{self.target}" if isinstance(self.target, int) else f"unix:{self.target}"
        self._process = subprocess.Popen(
            [sys.executable, "-I", __file__, where],  # -I: tests/ not on its sys.path
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            self.port = int(self._ask("port"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        assert process.stdout is not None
        with contextlib.suppress(OSError):
            process.stdin.close()  # the proxy's cue to close everything and exit
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        process.stdout.close()

    # what a test does

    def pause(self) -> None:
        self._ask("pause")

    def resume(self) -> None:
        self._ask("resume")

    def slow(self, seconds: float) -> None:
        self._ask(f"slow {seconds!r}")

    def cut(self) -> None:
        """Close every connection now and refuse new ones until ``restore``."""
        self._ask("cut")

    def restore(self) -> None:
        self._ask("restore")

    @property
    def accepted(self) -> int:
        """Connections asked of the proxy so far (refused ones too)."""
        return self._counts()[0]

    @property
    def connections(self) -> int:
        return self._counts()[1]

    @property
    def held(self) -> int:
        """Chunks received while paused and not yet forwarded (a query that reached
        the "server" and waits for its answer)."""
        return self._counts()[2]

    def _counts(self) -> tuple[int, int, int]:
        accepted, connections, held = self._ask("counts").split()
        return int(accepted), int(connections), int(held)

    def _ask(self, command: str) -> str:
        """Send one command; its answer once the proxy has carried it out."""
        process = self._process
        if process is None:
            raise RuntimeError("the proxy is not running (use it as a context manager)")
        assert process.stdin is not None
        assert process.stdout is not None
        try:
            process.stdin.write(command + "\n")
            process.stdin.flush()
        except OSError as exc:
            raise RuntimeError(f"the proxy exited ({process.poll()}): {exc}") from exc
        ready, _, _ = select.select([process.stdout], [], [], ANSWER_WITHIN)
        line = process.stdout.readline() if ready else ""
        if not line.endswith("\n"):
            raise RuntimeError(f"the proxy did not answer {command!r} (exit {process.poll()})")
        return line.strip()


class _Forwarder:
    """The proxy process: the listening socket, the pipes, and the commands."""

    def __init__(self, target: str) -> None:
        kind, _, where = target.partition(":")
        self.target: int | str = int(where) if kind == "tcp" else where
        self.delay = 0.0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.refusing = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.held = 0
        self.accepted = 0
        self.port = 0

    async def serve(self) -> None:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        commands = asyncio.StreamReader()
        loop = asyncio.get_running_loop()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
        async with server:
            while line := await commands.readline():  # until the test closes stdin
                sys.stdout.write(self.command(line.decode()) + "\n")
                sys.stdout.flush()
            self._abort_all()

    def command(self, line: str) -> str:
        name, _, argument = line.strip().partition(" ")
        if name == "port":
            return str(self.port)
        if name == "counts":
            return f"{self.accepted} {len(self.writers) // 2} {self.held}"
        if name == "pause":
            self.flowing.clear()
        elif name == "resume":
            self.flowing.set()
        elif name == "slow":
            self.delay = float(argument)
        elif name == "cut":
            self.refusing = True
            self._abort_all()
        elif name == "restore":
            self.refusing = False
            self.delay = 0.0
            self.flowing.set()
        else:
            return f"unknown command {name!r}"
        return "ok"

    def _abort_all(self) -> None:
        for writer in list(self.writers):
            writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refusing:
            writer.transport.abort()
            return
        try:
            if isinstance(self.target, int):
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
            else:
                up_reader, up_writer = await asyncio.open_unix_connection(self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for one in (writer, up_writer):
                self.writers.discard(one)
                one.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                if not self.flowing.is_set():  # paused: hold the bytes
                    self.held += 1
                    try:
                        await self.flowing.wait()
                    finally:
                        self.held -= 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.refusing:
                    return
                writer.write(data)
                await writer.drain()
        writer.transport.abort()  # one side ended: end the other, as TCP would


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` for the block (entered once the process is stopped); SIGCONT it
    whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while _state(pid) not in {"T", "t"}:
            if time.monotonic() > deadline:
                raise RuntimeError(f"process {pid} did not stop")
            time.sleep(0.005)
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _state(pid: int) -> str:
    """The process's state letter from /proc (R, S, T for stopped, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


if __name__ == "__main__":  # the proxy process (Proxy starts it)
    asyncio.run(_Forwarder(sys.argv[1]).serve())
