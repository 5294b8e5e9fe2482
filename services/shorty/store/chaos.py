"""The ``chaos_experiments`` table: start, stop and list experiments, and the poll
every service process makes of the ones in force (``resilience/experiments.py``).

Times are PostgreSQL's (``now()``): every process compares them with the
``now()`` of the same answer, never with its own clock (``active``).
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg

from shorty.core.chaos import Dependency, Experiment, ExperimentRunning, Kind

_COLUMNS = "id, dependency, kind, params, started_at, expires_at, stopped_at, created_by"
_IN_FORCE = "stopped_at IS NULL AND expires_at > now()"
# One round trip, one row at least: PostgreSQL's now, with each experiment in force
# (the experiment's columns NULL when there is none).
ACTIVE_SQL = (
    "SELECT now() AS now, e.* FROM (SELECT 1) AS one LEFT JOIN chaos_experiments AS e"
    " ON e.stopped_at IS NULL AND e.expires_at > now()"
)


class ChaosStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def start(
        self,
        dependency: Dependency,
        kind: Kind,
        seconds: int,
        *,
        latency_ms: int | None = None,
        rate: float | None = None,
        created_by: int | None = None,
    ) -> Experiment:
        """Record a new experiment, in force from now for ``seconds``. One at a time
        per dependency (``ExperimentRunning``): a transaction-scoped advisory lock per
        dependency makes two starts at once take turns."""
        params: dict[str, float] = {}
        if latency_ms is not None:
            params["latency_ms"] = latency_ms
        if rate is not None:
            params["rate"] = rate
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('chaos:' || $1))", dependency)
            running = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM chaos_experiments WHERE dependency = $1 AND {_IN_FORCE}",
                dependency,
            )
            if running is not None:
                raise ExperimentRunning(experiment_of(running))
            row = await conn.fetchrow(
                "INSERT INTO chaos_experiments (dependency, kind, params, expires_at, created_by)"
                " VALUES ($1, $2, $3::jsonb, now() + make_interval(secs => $4), $5)"
                f" RETURNING {_COLUMNS}",
                dependency,
                kind,
                json.dumps(params),
                float(seconds),
                created_by,
            )
        return experiment_of(row)

    async def stop(self, experiment_id: int) -> tuple[Experiment, bool] | None:
        """End an experiment now; None if there is none with this id. The flag says
        whether this call ended it (False: it had already ended: stopped or expired)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"UPDATE chaos_experiments SET stopped_at = now() WHERE id = $1 AND {_IN_FORCE}"
                f" RETURNING {_COLUMNS}",
                experiment_id,
            )
            if row is not None:
                return experiment_of(row), True
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM chaos_experiments WHERE id = $1", experiment_id
            )
        return None if row is None else (experiment_of(row), False)

    async def history(self, limit: int = 100) -> tuple[list[Experiment], datetime]:
        """The latest ``limit`` experiments, newest first, and PostgreSQL's now (to
        tell which are in force)."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM chaos_experiments ORDER BY id DESC LIMIT $1", limit
            )
            now: datetime = await conn.fetchval("SELECT now()")
        return [experiment_of(row) for row in rows], now


async def active(conn: asyncpg.Connection, seconds: float) -> tuple[list[Experiment], datetime]:
    """The experiments in force, and PostgreSQL's now of the same answer; on a plain
    connection of the caller's (the poll's own, which no experiment reaches), within
    ``seconds``."""
    rows = await conn.fetch(ACTIVE_SQL, timeout=seconds)
    return [experiment_of(row) for row in rows if row["id"] is not None], rows[0]["now"]


def experiment_of(row: asyncpg.Record) -> Experiment:
    params = json.loads(row["params"]) if isinstance(row["params"], str) else row["params"]
    latency = params.get("latency_ms")
    rate = params.get("rate")
    return Experiment(
        id=row["id"],
        dependency=row["dependency"],
        kind=row["kind"],
        latency_ms=None if latency is None else int(latency),
        rate=None if rate is None else float(rate),
        started_at=row["started_at"],
        expires_at=row["expires_at"],
        stopped_at=row["stopped_at"],
        created_by=row["created_by"],
    )
