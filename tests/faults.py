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

It runs its own event loop in a thread, so a test drives it from synchronous code
while the services under test run as processes. ``paused(pid)`` SIGSTOPs a process
and always SIGCONTs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

CHUNK = 65_536


class Proxy:
    def __init__(self, target: int | str) -> None:
        """``target``: a TCP port on 127.0.0.1, or the path of a Unix socket (the
        embedded servers listen on one)."""
        self.target = target
        self.port = 0
        self._delay = 0.0
        self._flowing: asyncio.Event | None = None  # cleared while paused
        self._refusing = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._held = 0  # chunks waiting for resume()
        self.accepted = 0  # connections asked of the proxy so far (refused ones too)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)

    def __enter__(self) -> Proxy:
        self._thread.start()
        if not self._ready.wait(10) or self._failure is not None:
            raise RuntimeError(f"the proxy did not start: {self._failure!r}")
        return self

    def __exit__(self, *_: object) -> None:
        self.resume()
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # what a test does

    def pause(self) -> None:
        self._on_loop(lambda flowing: flowing.clear())

    def resume(self) -> None:
        self._on_loop(lambda flowing: flowing.set())

    def _on_loop(self, change: Callable[[asyncio.Event], None]) -> None:
        if self._loop is None or self._flowing is None:
            return
        done = threading.Event()
        flowing = self._flowing

        def apply() -> None:
            change(flowing)
            done.set()

        self._loop.call_soon_threadsafe(apply)
        done.wait(5)

    def slow(self, seconds: float) -> None:
        self._delay = seconds

    def cut(self) -> None:
        """Close every connection now and refuse new ones until ``restore``."""
        self._refusing = True
        if self._loop is not None:
            done = threading.Event()

            def close_all() -> None:
                for writer in list(self._writers):
                    writer.transport.abort()
                done.set()

            self._loop.call_soon_threadsafe(close_all)
            done.wait(5)

    def restore(self) -> None:
        self._refusing = False
        self._delay = 0.0
        self.resume()

    @property
    def connections(self) -> int:
        return len(self._writers) // 2

    @property
    def held(self) -> int:
        """Chunks received while paused and not yet forwarded (a query that reached
        the "server" and waits for its answer)."""
        return self._held

    # the loop

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            for writer in list(self._writers):
                writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._refusing:
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
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for one in (writer, up_writer):
                self._writers.discard(one)
                one.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(CHUNK):
                assert self._flowing is not None
                if not self._flowing.is_set():  # paused: hold the bytes
                    self._held += 1
                    try:
                        await self._flowing.wait()
                    finally:
                        self._held -= 1
                if self._delay:
                    await asyncio.sleep(self._delay)
                if self._refusing:
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
