"""Bearer API keys: who is calling, and may they do this."""

from __future__ import annotations

from starlette.requests import Request

from shorty.store.keys import KeyStore, Principal
from shorty.web.problems import Problem

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="shorty"'}


async def authenticate(request: Request, scope: str) -> Principal:
    """The caller's principal if its key is valid and carries ``scope``."""
    header = request.headers.get("authorization")
    if not header:
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "Send an API key as 'Authorization: Bearer <key>'.",
            headers=_CHALLENGE,
        )
    kind, _, raw = header.partition(" ")
    raw = raw.strip()
    if kind.lower() != "bearer" or not raw or len(raw) > 512:
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "The Authorization header must read 'Bearer <key>'.",
            headers=_CHALLENGE,
        )
    keys: KeyStore = request.app.state.keys
    principal = await keys.authenticate(raw)
    if principal is None:
        raise Problem(
            401,
            "invalid-api-key",
            "Invalid API key",
            "This API key is unknown, revoked or expired.",
            headers=_CHALLENGE,
        )
    if not principal.allows(scope):
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            f"This API key lacks the '{scope}' scope.",
        )
    return principal
