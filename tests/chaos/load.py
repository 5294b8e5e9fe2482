"""Steady load for the fault tests: requests at a fixed rate from a thread of its own,
each answer's status and time recorded, and the figures a fault is judged by.

The load is an open loop: each stream sends its next request on schedule whether or
not the previous one was answered, as many independent clients do. A closed loop (a
client that waits for each answer) would turn a hanging service into a lower request
rate and hide it; here a hang shows as answers that take long, or as the client's
deadline (``TimeoutError``), never as a test that waits forever.

A shared module rather than helpers.py: the load driver and its figures are one
concern of their own (helpers.py holds the test stores' addresses and settings).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CLIENT_TIMEOUT = 10.0  # the client's own deadline: far past any the services have


@dataclass(frozen=True)
class Request:
    """One request of a stream. ``tag``: what the test counts its answer by (a short
    code, an idempotency key); ``body`` is sent as JSON."""

    method: str
    path: str
    tag: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True)
class Answer:
    """What one request got. ``status``: the HTTP status, or the name of what the
    client met instead (``TimeoutError``, ``ClientConnectorError``, ...)."""

    stream: str
    request: Request
    started: float  # time.monotonic()
    ended: float
    status: int | str
    retry_after: str | None = None
    content_type: str = ""
    body: bytes = b""

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass(frozen=True)
class Stream:
    """``rate`` requests a second to 127.0.0.1:``port``, each made by ``next_request``."""

    name: str
    port: int
    rate: float
    next_request: Callable[[], Request]


class SteadyLoad:
    """Drives ``streams`` from a thread with its own event loop while the test, in its
    own thread, injects faults. ``answers()`` may be read at any time; ``stop()`` (or
    leaving the ``with`` block) stops sending and waits for the requests in flight,
    each bounded by ``timeout``."""

    def __init__(self, streams: list[Stream], *, timeout: float = CLIENT_TIMEOUT) -> None:
        if not streams or any(s.rate <= 0 for s in streams):
            raise ValueError("each stream needs a rate above 0")
        self.streams = streams
        self.timeout = timeout
        self._answers: list[Answer] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def __enter__(self) -> SteadyLoad:
        self._thread.start()
        if not self._started.wait(10) or self._failure is not None:
            raise RuntimeError(f"the load did not start: {self._failure!r}")
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def answers(self) -> list[Answer]:
        """Every answer so far, in the order they came (a copy)."""
        return list(self._answers)

    def stop(self) -> list[Answer]:
        """Stop sending, wait for what is in flight; every answer."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self.timeout + 10)
        if self._thread.is_alive():
            raise RuntimeError("the load did not stop")
        if self._failure is not None:
            raise RuntimeError("the load failed") from self._failure
        return self.answers()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._failure = exc
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        in_flight: set[asyncio.Task[None]] = set()
        connector = aiohttp.TCPConnector(limit=0)  # one connection per request in flight
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            tickers = [
                asyncio.create_task(self._tick(stream, session, in_flight))
                for stream in self.streams
            ]
            self._started.set()
            # Until told to stop, or until a stream fails.
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stopping, *tickers], return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            for ticker in tickers:
                ticker.cancel()
            ended = await asyncio.gather(*tickers, return_exceptions=True)
            if in_flight:
                await asyncio.wait(in_flight, timeout=self.timeout + 5)
        # A stream that could not make its next request (out of codes, a bug) stopped
        # early: say so rather than hand back fewer answers.
        for outcome in ended:
            if isinstance(outcome, Exception):
                raise outcome

    async def _tick(
        self, stream: Stream, session: aiohttp.ClientSession, in_flight: set[asyncio.Task[None]]
    ) -> None:
        interval = 1 / stream.rate
        due = time.monotonic()
        while True:
            # On schedule, not after the last answer: a late loop catches up at once.
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += interval
            task = asyncio.create_task(self._send(stream, stream.next_request(), session))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

    async def _send(self, stream: Stream, request: Request, session: aiohttp.ClientSession) -> None:
        url = f"http://127.0.0.1:{stream.port}{request.path}"
        started = time.monotonic()
        try:
            async with session.request(
                request.method,
                url,
                headers=dict(request.headers),
                json=request.body,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                answer = Answer(
                    stream.name,
                    request,
                    started,
                    time.monotonic(),
                    response.status,
                    response.headers.get("Retry-After"),
                    response.headers.get("Content-Type", ""),
                    body,
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            answer = Answer(stream.name, request, started, time.monotonic(), type(exc).__name__)
        self._answers.append(answer)


@dataclass(frozen=True)
class Figures:
    """One stream through one fault: what its clients saw."""

    stream: str
    requests: int  # every answer of the run
    during: int  # sent after the fault began and answered before it ended
    failed: int  # of those, how many did not succeed
    slowest: float  # seconds, the slowest answer of the run
    recovery: float | None  # seconds from the fault's end until every answer succeeds

    @property
    def error_rate(self) -> float:
        return self.failed / self.during if self.during else 0.0

    def line(self, row: str) -> str:
        recovery = "not recovered" if self.recovery is None else f"{self.recovery:.2f} s"
        return (
            f"{row:<20} {self.stream:<15} {self.requests:>5} requests,"
            f" during the fault {self.error_rate:6.1%} errors ({self.failed}/{self.during}),"
            f" slowest {self.slowest * 1000:6.0f} ms, recovery {recovery}"
        )


def figures(
    answers: list[Answer],
    stream: str,
    succeeded: Callable[[Answer], bool],
    fault_at: float,
    restored_at: float,
) -> Figures:
    """``stream``'s figures for a fault from ``fault_at`` to ``restored_at``."""
    mine = [a for a in answers if a.stream == stream]
    during = [a for a in mine if a.started >= fault_at and a.ended <= restored_at]
    return Figures(
        stream,
        len(mine),
        len(during),
        sum(not succeeded(a) for a in during),
        max((a.seconds for a in mine), default=0.0),
        recovery(mine, succeeded, restored_at),
    )


def recovery(
    answers: list[Answer], succeeded: Callable[[Answer], bool], restored_at: float
) -> float | None:
    """Seconds from ``restored_at`` to the first request from which every later one
    succeeded (0: none failed after it); None while the last one sent failed."""
    after = sorted((a for a in answers if a.started >= restored_at), key=lambda a: a.started)
    failures = [i for i, a in enumerate(after) if not succeeded(a)]
    if not failures:
        return 0.0
    if failures[-1] == len(after) - 1:
        return None
    return after[failures[-1] + 1].started - restored_at


def settled(
    answers: list[Answer],
    succeeded: Callable[[Answer], bool],
    restored_at: float,
    streams: list[str],
    confirm: float,
) -> bool:
    """Whether every stream has recovered and has answered well for ``confirm``
    seconds of requests since."""
    for stream in streams:
        mine = [a for a in answers if a.stream == stream]
        since = recovery(mine, succeeded, restored_at)
        if since is None:
            return False
        latest = max((a.started for a in mine), default=restored_at)
        if latest - (restored_at + since) < confirm:
            return False
    return True
