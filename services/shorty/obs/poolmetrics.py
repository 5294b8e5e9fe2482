"""The PostgreSQL pool's gauges, read from the pool itself at each scrape.

``shorty_db_pool_connections{state}`` (``in_use``: handed out; ``idle``: open, free),
``shorty_db_pool_max_connections`` (SHORTY_DB_POOL_MAX) and ``shorty_db_pool_waiting``
(acquires not yet handed a connection: ``store/db.py`` counts them). A process holds
one pool (``shorty.runtime``); several (tests run services side by side) are summed.

The scrape runs in the metrics listener's thread: it only reads integers the pool
keeps, and never waits for the event loop, so it answers while the loop is stuck.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class Pool(Protocol):
    """What the gauges read (asyncpg's ``Pool``, with ``store.db.BoundedPool``'s count)."""

    waiting: int

    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def get_max_size(self) -> int: ...


class PoolCollector(Collector):
    def __init__(self) -> None:
        self._pools: list[Pool] = []

    @contextmanager
    def watching(self, pool: Pool) -> Iterator[None]:
        """The pool's connections are in the gauges while the block runs."""
        self._pools.append(pool)
        try:
            yield
        finally:
            self._pools.remove(pool)

    def collect(self) -> Iterable[Metric]:
        in_use = idle = most = waiting = 0
        for pool in tuple(self._pools):  # a copy: the loop may add or drop one meanwhile
            free = pool.get_idle_size()
            in_use += max(pool.get_size() - free, 0)
            idle += free
            most += pool.get_max_size()
            waiting += pool.waiting
        connections = GaugeMetricFamily(
            "shorty_db_pool_connections",
            "PostgreSQL connections of the pool: in_use (handed out) or idle (open, free).",
            labels=["state"],
        )
        connections.add_metric(["in_use"], in_use)
        connections.add_metric(["idle"], idle)
        yield connections
        yield GaugeMetricFamily(
            "shorty_db_pool_max_connections",
            "Most connections the pool opens (SHORTY_DB_POOL_MAX).",
            value=most,
        )
        yield GaugeMetricFamily(
            "shorty_db_pool_waiting",
            "Acquires of a pooled connection not yet handed one (waiting for a free one,"
            " or for a new one to connect).",
            value=waiting,
        )


POOLS = PoolCollector()
REGISTRY.register(POOLS)
