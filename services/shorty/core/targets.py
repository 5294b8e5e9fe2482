"""Rules for target URLs: what Shorty agrees to redirect to.

``normalize_target`` either returns the URL in canonical form (lower-case
scheme, IDNA host) or raises InvalidTarget with a reason slug and a sentence a
person understands.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote_plus, urlsplit, urlunsplit

import idna

from shorty.core.errors import InvalidTarget

MAX_LENGTH = 2048
SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """A host Shorty answers on; ``port`` None means any port."""

    host: str
    port: int | None = None


def normalize_target(
    raw: str, own: tuple[Origin, ...] = (), blocked: frozenset[str] = frozenset()
) -> str:
    """Validate ``raw`` and return its canonical form. ``blocked`` holds ASCII domain
    names refused with all their subdomains (``example.com`` blocks ``a.example.com``)."""
    url = raw.strip()
    if not url:
        raise InvalidTarget("empty", "The target URL is empty.")
    if len(url) > MAX_LENGTH:
        raise InvalidTarget(
            "too-long", f"The target URL is {len(url)} characters; the limit is {MAX_LENGTH}."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise InvalidTarget(
            "bad-characters", "The target URL contains spaces or control characters."
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidTarget("malformed", f"The target URL cannot be parsed: {exc}.") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = f"'{scheme}:'" if scheme else "none"
        raise InvalidTarget(
            "scheme",
            f"Only http and https links can be shortened (scheme was {shown}).",
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidTarget("credentials", "The target URL must not carry a user name or password.")
    host = ascii_host(parts.hostname or "")
    _refuse_own(host, port if port is not None else _DEFAULT_PORTS[scheme], own)
    if blocked and is_blocked(host, blocked):
        raise InvalidTarget("blocked-domain", f"Links to {host} are not allowed here.")
    netloc = _netloc(host, port, scheme)
    path, query, fragment = (_ascii(part) for part in (parts.path, parts.query, parts.fragment))
    canonical = urlunsplit(SplitResult(scheme, netloc, path, query, fragment))
    if len(canonical) > MAX_LENGTH:
        raise InvalidTarget(
            "too-long", f"The target URL is longer than {MAX_LENGTH} characters once encoded."
        )
    return canonical


_NON_ASCII = re.compile(r"[^\x21-\x7e]+")


def _ascii(part: str) -> str:
    """Percent-encode non-ASCII characters (as browsers do): a Location header is ASCII."""
    return _NON_ASCII.sub(lambda match: quote(match.group(), safe=""), part)


def ascii_url(url: str) -> str:
    """``url`` itself when it is printable ASCII (every normalized target is), else with
    the other characters percent-encoded: never raises, whatever the database holds."""
    return url if url.isascii() and url.isprintable() else _ascii(url)


def merge_query(target: str, query: str) -> str:
    """``target`` with the parameters of ``query`` added; a parameter present in both
    takes the value from ``query`` (the visitor's), as for utm_* tags. Pieces are
    kept byte for byte (names are decoded only to compare them)."""
    incoming = [piece for piece in query.split("&") if piece]
    if not incoming:
        return target
    parts = urlsplit(target)
    names = {_name(piece) for piece in incoming}
    kept = [piece for piece in parts.query.split("&") if piece and _name(piece) not in names]
    merged = "&".join(kept + [_ascii(piece) for piece in incoming])
    return urlunsplit(parts._replace(query=merged))


def _name(piece: str) -> str:
    return unquote_plus(piece.split("=", 1)[0])


def ascii_host(host: str) -> str:
    """``host`` as DNS sends it: an IP address in canonical form, or a lower-case
    IDNA (punycode) name without a trailing dot. Raises InvalidTarget."""
    host = host.strip("[]")
    if not host:
        raise InvalidTarget("no-host", "The target URL has no host name.")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        ascii_host = idna.encode(host.rstrip("."), uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidTarget("bad-host", f"'{host}' is not a valid host name ({exc}).") from None
    return ascii_host.lower()


def is_blocked(host: str, blocked: frozenset[str]) -> bool:
    """``host`` or any domain above it is in ``blocked``."""
    labels = host.split(".")
    return any(".".join(labels[i:]) in blocked for i in range(len(labels)))


def _refuse_own(host: str, port: int, own: tuple[Origin, ...]) -> None:
    for origin in own:
        if host == origin.host and origin.port in (None, port):
            raise InvalidTarget(
                "own-host", "Links to this shortener itself are not allowed (they would loop)."
            )


def _netloc(host: str, port: int | None, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return shown
    return f"{shown}:{port}"
