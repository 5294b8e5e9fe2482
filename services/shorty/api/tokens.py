"""Short-lived access tokens (JWT, HS256) for people who log in."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from shorty.api.params import as_id

ALGORITHM = "HS256"
ISSUER = "shorty"


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session: uuid.UUID  # the refresh-token family (``sid``): ended sessions end the token


class AccessTokens:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._secret = secret
        self.ttl = ttl_seconds

    def issue(self, user_id: int, session: uuid.UUID) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "sid": str(session),
            "iss": ISSUER,
            "iat": now,
            "exp": now + self.ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def mac(self, purpose: str, data: str) -> str:
        """A MAC of ``data`` for ``purpose`` under the signing secret (the same on every
        replica): the web app's CSRF tokens."""
        message = purpose.encode() + b"\0" + data.encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, token: str) -> AccessClaims | None:
        """The claims of a valid, unexpired token of ours; None for anything else."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "iss", "sid"]},
            )
            user_id = as_id(claims["sub"])
            if user_id is None:
                return None
            return AccessClaims(user_id, uuid.UUID(claims["sid"]))
        except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
            return None


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("ey")
