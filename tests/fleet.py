"""Shorty's four processes as production runs them, on a database and a Redis of
their own: what the tests that read a whole deployment's output start (the metrics
every component exports, ``tests/livemetrics.py``; the log lines Filebeat would read,
``tests/elk/capture.py``).

`shorty serve api|redirect|worker` (each with its metrics on a port of 127.0.0.1, its
output appended to ``<folder>/<kind>.log``) and `shorty-operator` against an
emulated Kubernetes API (kmock; ``<folder>/operator.log``), started side by side. On
leaving, every process is stopped and must exit 0, then the Redis server and the
database go.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from shorty import embedded
from shorty.store import migrate
from tests.e2e.processes import RedisServer, Service, service_env
from tests.helpers import free_port, user_with_key

T = TypeVar("T")


@dataclass(frozen=True)
class Fleet:
    url: str  # the database's
    api: Service
    redirect: Service
    worker: Service
    operator: Any  # tests.operator.helpers.Operator
    kube: Any  # tests.operator.kube.FakeKube


@contextlib.contextmanager
def fleet(admin_url: str, folder: Path, **env: str) -> Iterator[Fleet]:
    """The four processes on a new database of ``admin_url``'s server, with the
    SHORTY_* settings ``env`` on top of the tests' own (``service_env``)."""
    name = f"shorty_fleet_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(admin_url, name))
    try:
        migrate.upgrade(url)
        redis_server = RedisServer(folder / "redis")
        redis_server.start()
        try:
            with _running(url, service_env(url, redis_server.url, **env), folder) as running:
                yield running
        finally:
            redis_server.stop()
    finally:
        asyncio.run(embedded.drop_database(admin_url, name))


@contextlib.contextmanager
def _running(url: str, env: dict[str, str], folder: Path) -> Iterator[Fleet]:
    # Imported here: only a fleet needs the emulated cluster.
    from tests.operator.helpers import Operator
    from tests.operator.kube import FakeKube

    _, operator_key = user_with_key(url, "operator@example.com", scopes=("urls:read", "urls:write"))
    started: list[Any] = []
    # Side by side, each waiting for its own start (a second or two each); all stopped
    # before the emulated cluster is (the operator watches it).
    with FakeKube() as kube, ThreadPoolExecutor(4) as pool:
        futures: list[Future[Any]] = []
        try:
            api_port = free_port()

            def service(kind: str, port: int | None = None) -> Callable[[], Service]:
                return lambda: Service(
                    kind, env, folder / f"{kind}.log", port, metrics_port=free_port()
                )

            def operator() -> Operator:
                return Operator(kube, f"http://127.0.0.1:{api_port}", operator_key, folder)

            kinds = (service("api", api_port), service("redirect"), service("worker"))
            futures = [pool.submit(_kept(started, make)) for make in (*kinds, operator)]
            api, redirect, worker, operator_process = (future.result() for future in futures)
            yield Fleet(url, api, redirect, worker, operator_process, kube)
        finally:
            for future in futures:
                future.exception()  # every start over (a failed one killed itself)
            codes = list(pool.map(lambda child: child.stop(), started))
        assert codes == [0] * len(codes), f"not all stopped cleanly (see the logs): {codes}"


def _kept(started: list[Any], make: Callable[[], T]) -> Callable[[], T]:
    def start() -> T:
        child = make()
        started.append(child)
        return child

    return start
