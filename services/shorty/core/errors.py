"""Domain errors. Each carries a stable ``slug`` the web layer maps to a problem type."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    slug = "domain-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidTarget(DomainError):
    """The target URL breaks a rule; ``reason`` names which one."""

    slug = "invalid-target"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class InvalidAlias(DomainError):
    slug = "invalid-alias"


class InvalidExpiry(DomainError):
    slug = "invalid-expiry"


class InvalidRedirect(DomainError):
    """A redirect type that cannot honour the link's other fields (301/308 with an
    expiry or a click limit)."""

    slug = "invalid-redirect-type"


class InvalidTag(DomainError):
    slug = "invalid-tag"


class InvalidAccount(DomainError):
    slug = "invalid-account"


class QuotaExceeded(DomainError):
    """A per-user quota (live API keys, links) is used up; ``quota`` names which."""

    slug = "quota-exceeded"

    def __init__(self, quota: str, limit: int, message: str) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit


class AliasTaken(DomainError):
    slug = "alias-taken"


class ReferenceTaken(DomainError):
    """The external reference names a link another user owns."""

    slug = "reference-taken"


class CodeImmutable(DomainError):
    """A link's code never changes; a different code is a different link."""

    slug = "code-immutable"


class LinkNotFound(DomainError):
    slug = "link-not-found"


class CodeSpaceExhausted(DomainError):
    """Several fresh random codes in a row were taken: the code length is too short."""

    slug = "code-space-exhausted"


class InvalidLimit(DomainError):
    """A rate limit that does not read as ``<count>/<period>`` or ``off``."""

    slug = "invalid-limit"


class InvalidRefreshToken(DomainError):
    slug = "invalid-refresh-token"


class RefreshTokenReused(DomainError):
    """A refresh token used a second time: its whole family (the login) is revoked."""

    slug = "refresh-token-reused"


class IdempotencyMismatch(DomainError):
    """An Idempotency-Key sent again with another body."""

    slug = "idempotency-key-reused"


class IdempotencyInProgress(DomainError):
    """An Idempotency-Key whose first request has not answered yet."""

    slug = "idempotency-key-in-progress"


class BootstrapRefused(DomainError):
    """The first-start provisioning would make an admin of an account it did not make."""

    slug = "bootstrap-refused"
