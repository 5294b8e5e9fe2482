"""The worker's dead-letter stream, for admins: its size and letters, one letter,
replay and purge — what `shorty dlq` does, over HTTP (``worker/dlq.py``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import authenticate
from shorty.api.body import read_json, validate
from shorty.api.params import QueryInt
from shorty.bootstrap import api_deps_of
from shorty.cache.guard import REDIS_FAILURES
from shorty.obs.audit import audit
from shorty.web.problems import Problem
from shorty.worker import dlq

_LETTER_ID = f"^{dlq.LETTER_ID.pattern}$"


class LetterOut(BaseModel):
    id: str = Field(description="The letter's own ID in the dead-letter stream.")
    stream: str = Field(description="The stream the entry failed in.")
    group: str
    entry_id: str = Field(description="The entry's ID in that stream.")
    error: str
    deliveries: int = Field(description="Times it was delivered before it was set aside.")
    failed_at: datetime | None
    fields: dict[str, str] = Field(description="The entry as it was (bytes shown escaped).")


class LetterPage(BaseModel):
    size: int = Field(description="Letters in the stream now.")
    items: list[LetterOut] = Field(description="Oldest first.")
    next_after: str | None = Field(None, description="Pass as ?after= for the next page.")


class LetterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after: str | None = Field(None, pattern=_LETTER_ID, description="Letters after this ID.")
    limit: QueryInt = Field(50, ge=1, le=500)


class LetterChoice(BaseModel):
    """Some letters by ID, or all of them present now: one or the other."""

    model_config = ConfigDict(extra="forbid")

    ids: list[Annotated[str, Field(pattern=_LETTER_ID)]] | None = Field(
        None, min_length=1, max_length=500
    )
    all: bool = Field(False, strict=True)

    @model_validator(mode="after")
    def _one_or_all(self) -> LetterChoice:
        if (self.ids is None) == (not self.all):
            raise ValueError("send either ids or all: true")
        return self


class Replayed(BaseModel):
    replayed: int
    missing: list[str] = Field(description="IDs asked for that are not in the stream.")


class Purged(BaseModel):
    purged: int


def _unavailable(exc: Exception) -> Problem:
    return Problem(
        503,
        "service-unavailable",
        "Service temporarily unavailable",
        f"Redis, which holds the dead-letter stream, cannot be reached ({type(exc).__name__});"
        " retry in a few seconds.",
        headers={"Retry-After": "5"},
    )


async def letters(request: Request) -> Response:
    await authenticate(request, "admin")
    query = validate(dict(request.query_params), LetterQuery)
    client = api_deps_of(request).redis
    try:
        total = await dlq.size(client)
        found = await dlq.letters(client, count=query.limit + 1, after=query.after or "-")
    except REDIS_FAILURES as exc:
        raise _unavailable(exc) from None
    shown = found[: query.limit]
    page = LetterPage(
        size=total,
        items=[LetterOut(**one.describe()) for one in shown],
        next_after=shown[-1].id if len(found) > query.limit else None,
    )
    return JSONResponse(page.model_dump(mode="json"))


async def letter(request: Request) -> Response:
    await authenticate(request, "admin")
    letter_id = request.path_params["letter_id"]
    found = None
    if dlq.LETTER_ID.fullmatch(letter_id):
        try:
            found = await dlq.letter(api_deps_of(request).redis, letter_id)
        except REDIS_FAILURES as exc:
            raise _unavailable(exc) from None
    if found is None:
        raise Problem(
            404, "letter-not-found", "Letter not found", f"No letter has the ID {letter_id[:40]!r}."
        )
    return JSONResponse(LetterOut(**found.describe()).model_dump(mode="json"))


async def replay(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    deps = api_deps_of(request)
    body = await read_json(request, LetterChoice, deps.settings.max_body_bytes)
    client = deps.redis
    try:
        if body.ids is None:
            replayed = 0
            async for page in dlq.each_page(client):
                replayed += len(await dlq.replay(client, page))
            missing: list[str] = []
        else:
            found = [await dlq.letter(client, one) for one in body.ids]
            missing = [one for one, got in zip(body.ids, found, strict=True) if got is None]
            replayed = len(await dlq.replay(client, [got for got in found if got is not None]))
    except dlq.NotReplayable as exc:
        raise Problem(422, "validation-failed", "Letter not replayable", str(exc)) from None
    except REDIS_FAILURES as exc:
        raise _unavailable(exc) from None
    audit("configuration", "dlq-replay", user__id=principal.user_id, shorty__count=replayed)
    return JSONResponse(Replayed(replayed=replayed, missing=missing).model_dump())


async def purge(request: Request) -> Response:
    principal = await authenticate(request, "admin")
    deps = api_deps_of(request)
    body = await read_json(request, LetterChoice, deps.settings.max_body_bytes)
    try:
        purged = await dlq.purge(deps.redis, body.ids)
    except REDIS_FAILURES as exc:
        raise _unavailable(exc) from None
    audit("configuration", "dlq-purge", user__id=principal.user_id, shorty__count=purged)
    return JSONResponse(Purged(purged=purged).model_dump())
