"""Rules for user accounts and API keys (no hashing or storage here)."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata

from shorty.core.codes import BASE62
from shorty.core.errors import InvalidAccount

ROLES = frozenset({"user", "admin"})
SCOPES = frozenset({"urls:read", "urls:write", "stats:read", "keys:write", "admin"})
# A key made without naming scopes: it works with links and statistics, but cannot
# mint or revoke keys (``keys:write``) — a narrow key stays narrow.
DEFAULT_SCOPES = ("urls:read", "urls:write", "stats:read")
# What each role may hold at most. A key's effective scopes are its own scopes
# intersected with its owner's role, on every request: a demoted admin's keys lose
# ``admin`` at once, whatever they were minted with.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    "user": frozenset({"urls:read", "urls:write", "stats:read", "keys:write"}),
    "admin": SCOPES,
}
PASSWORD_MIN = 10
# The admin `shorty dev` makes, and the default SHORTY_INITIAL_ADMIN_EMAIL: never
# open to registration.
DEV_ADMIN_EMAIL = "admin@shorty.localhost"
KEY_PREFIX = "shk_"
KEY_PREFIX_SHOWN = 12  # characters kept in clear so people can tell keys apart

# White space as str.strip() and str.isspace() see it, spelt out so that the same
# pattern means the same in Python and in the OpenAPI document's (ECMA 262) regexes.
_SPACE = (
    "\\t\\n\\u000b\\f\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680"
    "\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
)
# An address: no white space or second @, and a domain that does not end in a dot
# (admin@example.com. would be another spelling of a reserved address).
_ADDRESS = f"[^@{_SPACE}]+@[^@{_SPACE}]*[^@{_SPACE}.]"
_EMAIL = re.compile(_ADDRESS)
# What the API takes as an email: the address, with white space around it (trimmed).
EMAIL_PATTERN = f"^[{_SPACE}]*{_ADDRESS}[{_SPACE}]*$"


def normalize_email(email: str) -> str:
    """``email`` trimmed and lower-cased, or InvalidAccount. Control and format
    characters (a zero-width space in ``ad\u200bmin@...``) are refused: they would
    make an address that reads as another one."""
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InvalidAccount(f"{email!r} is not an email address.")
    if any(unicodedata.category(char) in ("Cc", "Cf") for char in email):
        raise InvalidAccount(f"{email!r} holds invisible or control characters.")
    return email


def check_password(password: str) -> str:
    if len(password) < PASSWORD_MIN:
        raise InvalidAccount(f"A password needs at least {PASSWORD_MIN} characters.")
    if len(password) > 1024:
        raise InvalidAccount("A password may have at most 1024 characters.")
    return password


KEY_NAME_MAX = 100


def check_key_name(name: str) -> str:
    name = name.strip()
    if len(name) > KEY_NAME_MAX or not name.isprintable():
        raise InvalidAccount(f"A key name is at most {KEY_NAME_MAX} printable characters.")
    return name


def check_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    unknown = sorted(set(scopes) - SCOPES)
    if unknown:
        raise InvalidAccount(
            f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(sorted(SCOPES))}."
        )
    return tuple(sorted(set(scopes)))


def effective_scopes(role: str, scopes: frozenset[str] | tuple[str, ...]) -> frozenset[str]:
    """What a credential of a ``role`` user holding ``scopes`` may do (an unknown role:
    nothing)."""
    return frozenset(scopes) & ROLE_SCOPES.get(role, frozenset())


def check_scopes_for_role(scopes: tuple[str, ...], role: str) -> tuple[str, ...]:
    """``scopes`` checked and deduplicated, refused if the ``role`` does not grant them."""
    scopes = check_scopes(scopes)
    beyond = sorted(set(scopes) - ROLE_SCOPES.get(role, frozenset()))
    if beyond:
        raise InvalidAccount(
            f"A {role}'s key cannot hold {', '.join(beyond)}; only admins hold 'admin'."
        )
    return scopes


def new_api_key() -> str:
    """A fresh key: a recognisable prefix and 40 base62 characters (~238 bits)."""
    return KEY_PREFIX + "".join(secrets.choice(BASE62) for _ in range(40))


def account_hash(email: str) -> str:
    """What login limits and the audit log know an account by: a hash of its
    (normalized) address, so neither Redis keys nor log lines hold an email."""
    return hashlib.sha256(email.encode()).hexdigest()[:32]


def hash_api_key(raw: str) -> str:
    """Keys are long random strings, so one SHA-256 is enough (no slow KDF needed)."""
    return hashlib.sha256(raw.encode()).hexdigest()


def shown_prefix(raw: str) -> str:
    """The part of a key kept in clear. Keys we did not generate (an initial key
    chosen by an operator) show only four characters, so little of them leaks."""
    if raw.startswith(KEY_PREFIX) and len(raw) > KEY_PREFIX_SHOWN * 2:
        return raw[:KEY_PREFIX_SHOWN]
    return raw[:4]
