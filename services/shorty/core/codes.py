"""Short codes and custom aliases.

Generated codes are drawn from a CSPRNG over base62, so the next code cannot be
guessed from earlier ones. Uniqueness is enforced by the database; a collision
makes the caller draw again, a bounded number of times (``MAX_ATTEMPTS``).
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Callable, Sequence

from shorty.core.errors import InvalidAlias

BASE62 = string.digits + string.ascii_letters
DEFAULT_LENGTH = 7
MAX_ATTEMPTS = 5
ALIAS_MIN, ALIAS_MAX = 3, 64

# Paths Shorty (or a reverse proxy in front of it) serves itself, and words that
# would confuse people. Compared case-insensitively.
RESERVED = frozenset(
    {
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "bulk",
        "dashboard",
        "docs",
        "favicon",
        "health",
        "healthz",
        "login",
        "logout",
        "livez",
        "metrics",
        "readyz",
        "register",
        "robots",
        "signup",
        "static",
        "www",
    }
)

_ALIAS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# What may reach storage on the redirect path: aliases are the wider alphabet.
_CODE = re.compile(rf"[A-Za-z0-9_-]{{{ALIAS_MIN},{ALIAS_MAX}}}")


def generate_code(
    length: int = DEFAULT_LENGTH,
    choice: Callable[[Sequence[str]], str] = secrets.choice,
) -> str:
    """Return a random base62 code of ``length`` characters."""
    if length < 1:
        raise ValueError("length must be positive")
    return "".join(choice(BASE62) for _ in range(length))


def validate_alias(alias: str) -> str:
    """Return ``alias`` if people may choose it, else raise InvalidAlias saying why."""
    if not ALIAS_MIN <= len(alias) <= ALIAS_MAX:
        raise InvalidAlias(f"An alias must be {ALIAS_MIN} to {ALIAS_MAX} characters long.")
    if not _ALIAS.fullmatch(alias):
        raise InvalidAlias(
            "An alias may hold only letters, digits, '-' and '_', and must start "
            "with a letter or digit."
        )
    if alias.lower() in RESERVED:
        raise InvalidAlias(f"'{alias}' is reserved; choose another alias.")
    return alias


def is_well_formed(code: str) -> bool:
    """True if ``code`` could name a link: cheap check before any lookup."""
    if code.isalnum() and code.isascii():  # the usual shape, answered without the regex
        return ALIAS_MIN <= len(code) <= ALIAS_MAX
    return _CODE.fullmatch(code) is not None
