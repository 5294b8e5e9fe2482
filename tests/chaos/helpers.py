"""Shared by the fault tests: where the test's servers listen, their settings, timing."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from prometheus_client import REGISTRY

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.faults import Proxy

T = TypeVar("T")

READY_TIMEOUT = 0.5  # each /readyz check's deadline in these tests
APPS = {"api": create_api, "redirect": create_redirect}


def settings_for(clean, *, database_url=None, redis_url=None, **extra) -> Settings:
    """The test's stores (or the URLs given, such as through a proxy), short Redis
    and readiness deadlines (unless ``extra`` names others), and ``extra``."""
    return Settings(
        database_url=database_url or clean.database_url,
        redis_url=redis_url or clean.redis_url,
        public_url=PUBLIC_URL,
        **{"redis_timeout": 0.3, "ready_timeout": READY_TIMEOUT, **extra},
    )


def postgres_socket(url: str) -> str:
    """The Unix socket a ``postgresql://...?host=/dir`` URL connects to."""
    parts = urlsplit(url)
    return f"{parse_qs(parts.query)['host'][0]}/.s.PGSQL.{parts.port or 5432}"


def redis_socket(url: str) -> str:
    """The Unix socket a ``unix:///path?db=N`` Redis URL connects to."""
    return url.removeprefix("unix://").partition("?")[0]


def through(proxy: Proxy, url: str) -> str:
    """``url`` (PostgreSQL or Redis on a Unix socket) reached through ``proxy`` instead."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # redis: unix:///path?db=N
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis://127.0.0.1:{proxy.port}/{db}"
    auth = parts.netloc.rpartition("@")[0]
    return f"postgresql://{auth}@127.0.0.1:{proxy.port}{parts.path}?sslmode=disable"


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """What ``call()`` returned, and the seconds it took."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic time the call started
    seconds: float
    status: int


class Load:
    """Steady load from the test: ``threads`` callers, each calling ``call(n)`` (``n``
    counts the calls of all of them, so each can name a new code) in a loop, with
    ``pause`` seconds between its calls, until the block ends; every call is kept as a
    ``Sample``. ``call`` returns the HTTP status."""

    def __init__(self, call: Callable[[int], int], *, threads: int, pause: float = 0.005):
        self._call = call
        self._pause = pause
        self._stop = threading.Event()
        self._count = itertools.count()
        self.samples: list[Sample] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            status = self._call(next(self._count))
            self.samples.append(Sample(started, time.monotonic() - started, status))
            self._stop.wait(self._pause)

    def between(self, start: float, end: float = float("inf")) -> list[Sample]:
        """The calls that started in [start, end)."""
        return [s for s in list(self.samples) if start <= s.at < end]


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def figures(name: str, samples: list[Sample], ok: Callable[[int], bool]) -> dict[str, float]:
    """Count, error rate, p50, p99 and max of ``samples`` (``ok``: a good status),
    printed on one line (``pytest -s`` shows them)."""
    assert samples, f"{name}: no calls"
    seconds = [s.seconds for s in samples]
    result = {
        "calls": len(samples),
        "error_rate": sum(not ok(s.status) for s in samples) / len(samples),
        "p50": quantile(seconds, 0.5),
        "p99": quantile(seconds, 0.99),
        "max": max(seconds),
    }
    print(
        f"{name}: {result['calls']} calls, error rate {result['error_rate']:.1%},"
        f" p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms,"
        f" max {result['max'] * 1000:.0f} ms"
    )
    return result


def breaker_state(dependency: str) -> float | None:
    """The process's ``shorty_breaker_state`` of ``dependency`` (0 closed, 1 open, 2 half-open)."""
    return REGISTRY.get_sample_value("shorty_breaker_state", {"dependency": dependency})


def breaker_opened(dependency: str) -> float:
    """How many times the breaker of ``dependency`` opened so far in this process."""
    labels = {"dependency": dependency, "to": "open"}
    return REGISTRY.get_sample_value("shorty_breaker_transitions_total", labels) or 0.0
