"""User accounts and API keys: who acts (``Principal``), what the stores hand back
(``User``, ``ApiKey``), and the rules for emails, passwords, key names and scopes.
Hashing of keys is here (SHA-256); password hashing and storage are not."""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime

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
# Owner of the ShortLink operator's key (SHORTY_OPERATOR_API_KEY): never registrable.
OPERATOR_EMAIL = "operator@shorty.localhost"
# Exactly what the operator does with the API: read and write links, nothing else.
OPERATOR_SCOPES = ("urls:read", "urls:write")
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


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    role: str
    disabled: bool
    created_at: datetime
    rate_limit: str | None = None
    max_links: int | None = None  # None: SHORTY_MAX_LINKS_PER_USER


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    user_id: int
    email: str
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rate_limit: str | None = None
    parent_id: int | None = None  # the key that minted this one (None: a login or the CLI)


SESSION_KEY_ID = 0  # the key_id of a principal that logged in (an access token, no key)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a user, through one of their keys.

    ``scopes`` are always the effective ones: whatever a credential holds is cut
    down to what its owner's role grants when the principal is made, so no code
    path can act on a scope the role lost."""

    user_id: int
    role: str
    key_id: int
    scopes: frozenset[str]
    key_limit: str | None = None  # overrides SHORTY_LIMIT_PER_KEY for this key
    user_limit: str | None = None  # overrides SHORTY_LIMIT_PER_USER for this user
    max_links: int | None = None  # overrides SHORTY_MAX_LINKS_PER_USER for this user
    # The keys above this one (id, own rate limit), the minting one last: a request
    # spends from each of their limits too.
    ancestors: tuple[tuple[int, str | None], ...] = ()
    # A login session's refresh-token family (an access token's ``sid``); None for a key.
    session: uuid.UUID | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scopes", effective_scopes(self.role, self.scopes))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or self.is_admin

    @property
    def owner_scope(self) -> int | None:
        """The owner whose links this principal may reach: None (every link) for an
        admin, else their own user id."""
        return None if self.is_admin else self.user_id

    def link_quota(self, default: int | None) -> int | None:
        """The most links this user may own: their own quota, else ``default``
        (None: no limit)."""
        return self.max_links if self.max_links is not None else default
