"""Steady redirect traffic from threads, every answer recorded, every click traceable.

Each request carries a ``Referer`` whose host names it (``r<seq>.<target>.test``);
the redirect keeps that host in the click (``referrer_host``), so a test can tell,
click by click, which answered redirects reached PostgreSQL and which did not —
rather than comparing two totals that could hide a loss behind a duplicate.
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from shorty.redirect.clicks import STREAM
from shorty.worker.ingest import GROUP
from tests.helpers import query


@dataclass(frozen=True, slots=True)
class Answer:
    target: str  # the name of the replica asked
    seq: int  # the request's number, in its Referer host
    status: int | str  # the HTTP status, or the name of the exception met
    at: float  # time.monotonic() when the answer (or the failure) came


class Traffic:
    """``threads`` paced threads per target (name -> port on 127.0.0.1), each with a
    keep-alive connection, cycling through ``codes``; ``rate``: requests per second
    per target. A connection that fails is recorded and opened again after a pause,
    so a dead replica costs little CPU."""

    def __init__(
        self, targets: dict[str, int], codes: list[str], *, rate: float = 150, threads: int = 3
    ) -> None:
        self.targets = targets
        self.codes = codes
        self.interval = threads / rate
        self.threads = threads
        self.answers: list[Answer] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def __enter__(self) -> Traffic:
        for name, port in self.targets.items():
            for i in range(self.threads):
                worker = threading.Thread(target=self._send, args=(name, port, i), daemon=True)
                worker.start()
                self._workers.append(worker)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(15)

    def _send(self, name: str, port: int, index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        codes = itertools.cycle(self.codes[index % len(self.codes) :] + self.codes)
        due = time.monotonic()
        while not self._stop.is_set():
            seq = next(self._seq)
            headers = {"Referer": f"https://r{seq}.{name}.test/", "User-Agent": f"traffic/{name}"}
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", f"/{next(codes)}", headers=headers)
                response = conn.getresponse()
                response.read()
                status: int | str = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            with self._lock:
                self.answers.append(Answer(name, seq, status, time.monotonic()))
            if not isinstance(status, int):
                self._stop.wait(0.05)
            due = max(due + self.interval, time.monotonic() - self.interval)
            self._stop.wait(max(0.0, due - time.monotonic()))
        if conn is not None:
            conn.close()

    def of(self, target: str, since: float = 0.0, until: float = float("inf")) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if a.target == target and since <= a.at < until]


def redirected(answers: Iterable[Answer]) -> set[int]:
    """The request numbers of the answers that were redirects (a click each)."""
    return {a.seq for a in answers if isinstance(a.status, int) and 300 <= a.status < 400}


def failed(answers: Iterable[Answer]) -> list[Answer]:
    """The answers that were not redirects."""
    return [a for a in answers if not (isinstance(a.status, int) and 300 <= a.status < 400)]


def stored_clicks(database_url: str, target: str) -> list[int]:
    """The request numbers of the clicks stored for ``target``'s requests, one per
    stored row (a number twice: a click stored twice)."""
    rows = query(
        database_url,
        "SELECT referrer_host FROM clicks WHERE referrer_host LIKE $1",
        f"r%.{target}.test",
    )
    return [int(row[0].split(".", 1)[0][1:]) for row in rows]


def clicks_drained(redis_url: str) -> bool:
    """Whether the worker has read every entry of the click stream and acknowledged
    each one (nothing left for it to store)."""
    client = redis.Redis.from_url(redis_url)
    try:
        if not client.exists(STREAM):
            return True
        last = client.xinfo_stream(STREAM)["last-generated-id"]
        groups = {g["name"]: g for g in client.xinfo_groups(STREAM)}
        group = groups.get(GROUP.encode())
        return group is not None and group["last-delivered-id"] == last and not group["pending"]
    finally:
        client.close()
