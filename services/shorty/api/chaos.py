"""Fault injection for experiments, for admins: start one, list them, stop one.

The caller must hold the ``admin`` scope, checked first (``auth.authenticate``, as
on every admin route: nobody else learns even whether fault injection is on). Off
unless SHORTY_CHAOS_ENABLED: then every route here answers an admin 404
``chaos-disabled``, and no process injects anything.

These routes are never hurt by an experiment (``uninjected``): their PostgreSQL and
Redis calls, authentication's included, reach the real servers past the fault
injection and the breakers, so an outage injected on PostgreSQL can still be
listed and stopped through them.

An experiment is a row of ``chaos_experiments``; every service process applies
the ones in force (``resilience/faults.py``), so a start here reaches the whole
stack within about a second, and each ends by itself at ``expires_at``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import read_json, validate
from shorty.api.params import QueryInt, path_id
from shorty.bootstrap import api_deps_of
from shorty.core.chaos import (
    MAX_LATENCY_MS,
    MAX_SECONDS,
    MIN_SECONDS,
    Dependency,
    Experiment,
)
from shorty.obs.audit import audit
from shorty.resilience.faults import bypassed
from shorty.store.chaos import ChaosStore
from shorty.web.problems import Problem

Seconds = Annotated[
    int,
    Field(
        strict=True,
        ge=MIN_SECONDS,
        le=MAX_SECONDS,
        description="How long it lasts; it ends by itself then, whoever started it.",
    ),
]


class _Start(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dependency: Dependency = Field(description="What every service process sees misbehave.")
    seconds: Seconds


class LatencyStart(_Start):
    """Each call to the dependency waits ``latency_ms`` more (bounded by the call's
    own deadline: past it, the call times out)."""

    kind: Literal["latency"]
    latency_ms: int = Field(strict=True, ge=1, le=MAX_LATENCY_MS)


class ErrorStart(_Start):
    """A share ``rate`` of the calls fails as if the dependency were unreachable."""

    kind: Literal["error"]
    rate: float = Field(ge=0, le=1, description="0 to 1: the share of calls that fail.")


class OutageStart(_Start):
    """Every call fails as if the dependency were unreachable."""

    kind: Literal["outage"]


class ExperimentStart(RootModel[LatencyStart | ErrorStart | OutageStart]):
    """A fault-injection experiment to start: its ``kind`` says which fields it takes."""

    root: Annotated[LatencyStart | ErrorStart | OutageStart, Field(discriminator="kind")]


class ExperimentOut(BaseModel):
    """A fault-injection experiment."""

    id: int
    dependency: str
    kind: str
    latency_ms: int | None = Field(description="latency: the delay added to each call.")
    rate: float | None = Field(description="error: the share of calls that fail.")
    started_at: datetime
    expires_at: datetime = Field(description="When it ends by itself.")
    stopped_at: datetime | None = Field(description="When an admin stopped it, if one did.")
    created_by: int | None = Field(description="The admin's user id.")
    active: bool = Field(description="In force now: not stopped, not expired.")

    @classmethod
    def of(cls, experiment: Experiment, *, active: bool) -> ExperimentOut:
        return cls(
            id=experiment.id,
            dependency=experiment.dependency,
            kind=experiment.kind,
            latency_ms=experiment.latency_ms,
            rate=experiment.rate,
            started_at=experiment.started_at,
            expires_at=experiment.expires_at,
            stopped_at=experiment.stopped_at,
            created_by=experiment.created_by,
            active=active,
        )


class ExperimentList(BaseModel):
    """Experiments, newest first: those in force and past ones."""

    items: list[ExperimentOut]


class HistoryQuery(BaseModel):
    limit: QueryInt = Field(100, ge=1, le=500)


Handler = Callable[[Request], Awaitable[Response]]


def uninjected(handler: Handler) -> Handler:
    """``handler`` with every PostgreSQL and Redis call past the fault injection
    (``resilience.faults.bypassed``) and the PostgreSQL breaker (``store.db``)."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        with bypassed():
            return await handler(request)

    return run


@uninjected
async def start(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    store = _enabled(request)
    deps = api_deps_of(request)
    body = (await read_json(request, ExperimentStart, deps.settings.max_body_bytes)).root
    experiment = await store.start(
        body.dependency,
        body.kind,
        body.seconds,
        latency_ms=body.latency_ms if isinstance(body, LatencyStart) else None,
        rate=body.rate if isinstance(body, ErrorStart) else None,
        created_by=principal.user_id,
    )
    audit(
        "configuration",
        "chaos-start",
        user__id=principal.user_id,
        shorty__chaos__id=experiment.id,
        shorty__chaos__dependency=experiment.dependency,
        shorty__chaos__kind=experiment.kind,
        shorty__chaos__seconds=body.seconds,
    )
    out = ExperimentOut.of(experiment, active=True)
    return JSONResponse(out.model_dump(mode="json"), status_code=201)


@uninjected
async def history(request: Request) -> Response:
    await authenticate(request, "admin")
    store = _enabled(request)
    query = validate(dict(request.query_params), HistoryQuery)
    experiments, now = await store.history(query.limit)
    listing = ExperimentList(
        items=[ExperimentOut.of(e, active=e.active_at(now)) for e in experiments]
    )
    return JSONResponse(listing.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@uninjected
async def stop(request: Request) -> Response:
    """End an experiment now. Idempotent: one that had already ended (stopped or
    expired) is answered as it is, 200 too."""
    principal = await authenticate(request, "admin")
    store = _enabled(request)
    experiment_id = path_id(request, "experiment_id")
    stopped = await store.stop(experiment_id)
    if stopped is None:
        raise Problem(
            404,
            "experiment-not-found",
            "Experiment not found",
            f"No fault-injection experiment has the id {experiment_id}.",
        )
    experiment, ended_now = stopped
    if ended_now:
        audit(
            "configuration",
            "chaos-stop",
            user__id=principal.user_id,
            shorty__chaos__id=experiment.id,
        )
    # Ended either way: stopped now, or before (stopped or expired).
    return JSONResponse(ExperimentOut.of(experiment, active=False).model_dump(mode="json"))


def _enabled(request: Request) -> ChaosStore:
    """The experiments' store, or 404 while fault injection is off."""
    deps = api_deps_of(request)
    if not deps.settings.chaos_enabled:
        raise Problem(
            404,
            "chaos-disabled",
            "Fault injection is off",
            "This server does not run fault-injection experiments (SHORTY_CHAOS_ENABLED"
            " is not true).",
        )
    return ChaosStore(deps.pool)
