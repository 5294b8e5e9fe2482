"""Rules for target URLs: what Shorty agrees to redirect to.

``normalize_target`` either returns the URL in canonical form (lower-case
scheme, canonical host, non-ASCII percent-encoded) or raises InvalidTarget with
a reason slug and a sentence a person understands. The host is read the way a
browser reads it (``core/hosts.py``), and every rule compares only that
canonical host; a URL that Python's parser and a browser's would send to
different hosts is refused outright (``ambiguous``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, quote, unquote_plus, urlsplit, urlunsplit

from ada_url import URL

from shorty.core.errors import InvalidTarget
from shorty.core.hosts import (
    Host,
    canonical_host,
    confusable_labels,
    embedded_ipv4,
    from_url_host,
)

MAX_LENGTH = 2048
SCHEMES = frozenset({"http", "https"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """A host Shorty answers on; ``port`` None means any port. ``host`` is kept in
    its canonical form (``Origin("LocalHost.")`` is ``Origin("localhost")``)."""

    host: str
    port: int | None = None
    canonical: Host = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        canonical = canonical_host(self.host)
        object.__setattr__(self, "canonical", canonical)
        object.__setattr__(self, "host", canonical.name)

    def serves(self, host: Host, port: int) -> bool:
        """A link to ``host``:``port`` would reach this origin: the same host (every
        spelling of this machine counts as one), on its port."""
        same = self.canonical.key == host.key or (self.canonical.is_loopback and host.is_loopback)
        return same and self.port in (None, port)


@dataclass(frozen=True, slots=True)
class TargetRules:
    """Where links may point. The defaults refuse private addresses and
    mixed-script host names; ``FORM_ONLY`` checks only that a URL is well formed."""

    own: tuple[Origin, ...] = ()
    blocked: frozenset[str] = frozenset()  # canonical hosts refused with their subdomains
    allow_private: bool = False
    allow_confusable: bool = False

    def check(self, host: Host, port: int) -> None:
        if any(origin.serves(host, port) for origin in self.own):
            raise InvalidTarget(
                "own-host", "Links to this shortener itself are not allowed (they would loop)."
            )
        if self.blocked and is_blocked(host, self.blocked):
            raise InvalidTarget("blocked-domain", f"Links to {host.name} are not allowed here.")
        if not self.allow_private and host.is_private:
            raise InvalidTarget(
                "private-address",
                f"Links to {host.name} are not allowed: it is a loopback, private or"
                " link-local address or name, not a host of the public internet.",
            )
        if not self.allow_confusable:
            mixed = confusable_labels(host)
            if mixed:
                raise InvalidTarget(
                    "confusable-host",
                    f"The host name mixes scripts that look alike ({', '.join(mixed)});"
                    " such names are used to imitate other sites.",
                )


FORM_ONLY = TargetRules(allow_private=True, allow_confusable=True)


def normalize_target(raw: str, rules: TargetRules = TargetRules()) -> str:
    """Validate ``raw`` against ``rules`` and return its canonical form. White space
    is refused, around the URL too: what is stored is what was sent, or nothing."""
    url = raw
    if not url.strip():
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
    if not parts.hostname:
        raise InvalidTarget("no-host", "The target URL has no host name.")
    host, port = _browser_host(url, parts.hostname, port, scheme)
    rules.check(host, port)
    netloc = _netloc(host.name, port, scheme)
    path, query, fragment = (_ascii(part) for part in (parts.path, parts.query, parts.fragment))
    canonical = urlunsplit(SplitResult(scheme, netloc, path, query, fragment))
    if len(canonical) > MAX_LENGTH:
        raise InvalidTarget(
            "too-long", f"The target URL is longer than {MAX_LENGTH} characters once encoded."
        )
    return canonical


def _browser_host(
    url: str, split_host: str, split_port: int | None, scheme: str
) -> tuple[Host, int]:
    """The host and port a browser would connect to for ``url``, checked against what
    Python's parser read (``split_host``, ``split_port``): they must agree."""
    try:
        browser = URL(url)
    except ValueError:
        raise InvalidTarget("malformed", "The target URL cannot be parsed.") from None
    if browser.username or browser.password:
        raise InvalidTarget("credentials", "The target URL must not carry a user name or password.")
    host = from_url_host(browser.hostname)
    port = int(browser.port) if browser.port else _DEFAULT_PORTS[scheme]
    shown = f"[{split_host}]" if ":" in split_host else split_host
    # The usual host reads alike to both already: no second parse for it.
    same_host = split_host == host.name or canonical_host(shown).key == host.key
    if not same_host or (split_port or _DEFAULT_PORTS[scheme]) != port:
        raise InvalidTarget(
            "ambiguous", "The target URL's host reads differently to different parsers."
        )
    return host, port


_NON_ASCII = re.compile(r"[^\x21-\x7e]+")


def _ascii(part: str) -> str:
    """Percent-encode non-ASCII characters (as browsers do): a Location header is ASCII."""
    return _NON_ASCII.sub(lambda match: quote(match.group(), safe=""), part)


def ascii_url(url: str) -> str:
    """``url`` itself when it is printable ASCII (every normalized target is), else with
    the other characters percent-encoded: never raises, whatever the database holds."""
    return url if url.isascii() and url.isprintable() else _ascii(url)


def merge_query(target: str, query: str, *, override: bool = False) -> str:
    """``target`` with the visitor's ``query`` parameters added (``forward_query``).

    A parameter the target already has keeps the target's value — the link's
    author chose it, and a visitor must not change where it leads — unless
    ``override`` (the link opted in), or the name starts with ``utm_``: campaign
    tags are the visitor's to set. "Already has" is judged the way the servers
    behind links read names (``_same_name``: ``A.B``, ``a b`` and ``a_b[]`` are all
    ``a_b``), and a visitor's piece holding ``;`` (a separator to some servers) is
    dropped. Pieces are kept byte for byte (names are decoded only to compare)."""
    incoming = [piece for piece in query.split("&") if piece]
    if not incoming:
        return target
    parts = urlsplit(target)
    existing = [piece for piece in parts.query.split("&") if piece]
    if not override:
        held = {_same_name(piece) for piece in existing}
        incoming = [
            piece
            for piece in incoming
            if ";" not in piece
            and (_same_name(piece) not in held or _same_name(piece).startswith("utm_"))
        ]
    names = {_name(piece) for piece in incoming}
    kept = [piece for piece in existing if _name(piece) not in names]
    merged = "&".join(kept + [_ascii(piece) for piece in incoming])
    return urlunsplit(parts._replace(query=merged))


def _name(piece: str) -> str:
    return unquote_plus(piece.split("=", 1)[0])


_SPELLINGS = re.compile(r"[.\s]")


def _same_name(piece: str) -> str:
    """A parameter's name as the most lenient server would read it: PHP turns ``.``
    and spaces into ``_`` and drops leading spaces and everything from ``[``;
    ASP.NET ignores case."""
    name = _name(piece).lstrip().split("[", 1)[0]
    return _SPELLINGS.sub("_", name).casefold()


def is_blocked(host: Host, blocked: frozenset[str]) -> bool:
    """``host`` or any domain above it is in ``blocked`` (an address: itself, or the
    IPv4 address it carries: a blocked 1.2.3.4 is blocked as [64:ff9b::1.2.3.4] too)."""
    if isinstance(host.address, ipaddress.IPv6Address):
        carried = embedded_ipv4(host.address)
        if carried is not None and str(carried) in blocked:
            return True
    if host.address is not None:
        return host.key in blocked
    labels = host.name.split(".")
    return any(".".join(labels[i:]) in blocked for i in range(len(labels)))


def _netloc(host: str, port: int, scheme: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    if port == _DEFAULT_PORTS[scheme]:
        return shown
    return f"{shown}:{port}"
