"""``GET /api/v1/admin/live``: every service's figures now, read from its own
metrics and readiness (``shorty.live``; the targets are SHORTY_LIVE_TARGETS)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.bootstrap import api_deps_of


class Dependency(BaseModel):
    health: str | None = Field(None, description="up or down, by the service's /readyz.")
    breaker: str | None = Field(None, description="closed, open or half-open.")


class ServiceFigures(BaseModel):
    name: str
    kind: str = Field(description="api, redirect or worker: which figures it has.")
    up: bool = Field(description="Its metrics answered.")
    error: str | None = Field(description="Why not, when they did not.")
    ready: bool | None = Field(description="Its /readyz said ready; null: no /readyz given.")
    health_error: str | None = Field(None, description="Why its /readyz gave no answer.")
    dependencies: dict[str, Dependency]
    requests_per_second: float | None = Field(description="Null until a second read.")
    error_ratio: float | None = Field(description="Share of answers that were 5xx.")
    p99_ms: float | None = Field(description="Of the requests since the previous read.")
    cache_hit_ratio: float | None = Field(description="Redirect lookups the LRU or Redis answered.")
    clicks_per_second: float | None
    stream_lag: int | None = Field(description="Stream entries not yet delivered.")
    dlq: int | None = Field(description="Letters in the dead-letter stream.")
    loop_lag_ms: float | None
    chaos: list[str] = Field(description="Fault injections in force there.")


class LiveSnapshot(BaseModel):
    at: float = Field(description="When it was read (Unix time).")
    services: list[ServiceFigures]


async def live(request: Request) -> Response:
    await authenticate(request, "admin")
    snapshot = await api_deps_of(request).live.snapshot()
    return JSONResponse(shown(snapshot), headers={"Cache-Control": "no-store"})


def shown(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as this route answers it (the web app pushes the same)."""
    return LiveSnapshot.model_validate(snapshot).model_dump(mode="json")
