"""How domain errors read as problems: status and title per kind."""

from __future__ import annotations

from shorty.core.chaos import ExperimentRunning
from shorty.core.errors import (
    AliasTaken,
    CodeImmutable,
    CodeSpaceExhausted,
    DomainError,
    IdempotencyInProgress,
    IdempotencyMismatch,
    InvalidAccount,
    InvalidLimit,
    InvalidRefreshToken,
    InvalidTag,
    InvalidTarget,
    LinkNotFound,
    QuotaExceeded,
    ReferenceTaken,
    RefreshTokenReused,
)
from shorty.web.problems import Problem

_STATUS: dict[type[DomainError], tuple[int, str]] = {
    InvalidAccount: (422, "Invalid account data"),
    QuotaExceeded: (403, "Quota reached"),
    LinkNotFound: (404, "Link not found"),
    AliasTaken: (409, "Alias already taken"),
    ReferenceTaken: (409, "Reference held by another user's link"),
    CodeImmutable: (409, "A link's code cannot change"),
    CodeSpaceExhausted: (503, "No free short code"),
    InvalidTarget: (422, "Target URL not allowed"),
    InvalidTag: (422, "Invalid tag"),
    InvalidLimit: (422, "Invalid rate limit"),
    IdempotencyMismatch: (422, "Idempotency-Key reused"),
    IdempotencyInProgress: (409, "Request in progress"),
    InvalidRefreshToken: (401, "Invalid refresh token"),
    RefreshTokenReused: (401, "Refresh token reused"),
    ExperimentRunning: (409, "An experiment is already in force"),
}


def domain_problem(exc: DomainError) -> Problem:
    status, title = _STATUS.get(type(exc), (422, "Invalid request"))
    problem = Problem(status, exc.slug, title, exc.message)
    if isinstance(exc, InvalidTarget):
        problem.extensions["reason"] = exc.reason
    if isinstance(exc, QuotaExceeded):
        problem.extensions.update(quota=exc.quota, limit=exc.limit)
    return problem
