"""Hosts as a browser reaches them, in one canonical form.

Every rule about where a link may point (own hosts, the block-list, private
addresses) compares hosts, and a comparison is only as good as the spelling it
sees: ``evil.com。`` (an ideographic full stop), ``127.1``, ``2130706433``,
``0x7f.1`` and ``[::ffff:127.0.0.1]`` all reach a host that a naive string
comparison would not recognise. So a host is parsed once, the way browsers do
(the WHATWG URL Standard's host parser, through ada-url: UTS 46 mapping of
every dot and letter, IPv4 in decimal, octal, hex and shorthand), then the
root dot is dropped and empty labels refused; rules look only at the result.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import idna
import unicodedataplus
from ada_url import URL

from shorty.core.errors import InvalidTarget

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Names that only ever mean this machine or a private network (RFC 6761 localhost,
# RFC 6762 .local, RFC 8375 home.arpa, ICANN's 2024 .internal — where
# metadata.google.internal lives — and the localdomain convention).
_LOOPBACK_NAMES = ("localhost",)
_PRIVATE_SUFFIXES = ("localhost", "local", "internal", "home.arpa", "localdomain")
# IPv6 ranges that carry an IPv4 address in their last 32 bits: NAT64 (RFC 6052),
# local-use NAT64 (RFC 8215), IPv4-translated (RFC 2765) and IPv4-compatible.
_EMBEDDING = tuple(
    ipaddress.IPv6Network(net)
    for net in ("64:ff9b::/96", "64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")
)
# Special-purpose ranges Python's ipaddress (3.11) still calls global:
# documentation (RFC 9637) and SRv6 SIDs (RFC 9602).
_NOT_GLOBAL = tuple(ipaddress.IPv6Network(net) for net in ("3fff::/20", "5f00::/16"))


@dataclass(frozen=True, slots=True)
class Host:
    """A canonical host. ``name`` is what a URL carries: lower-case A-labels without
    a root dot, dotted-decimal IPv4, or compressed IPv6 (no brackets). ``address``
    is set for an IP literal, an IPv4-mapped IPv6 address given as its IPv4."""

    name: str
    address: Address | None = None

    @property
    def key(self) -> str:
        """What two hosts are compared by: the same machine has the same key."""
        return str(self.address) if self.address is not None else self.name

    @property
    def is_loopback(self) -> bool:
        """This machine, however spelt: 127.0.0.0/8, ::1, 0.0.0.0 and :: (which
        browsers send to this machine too), localhost and *.localhost."""
        if self.address is not None:
            return self.address.is_loopback or self.address.is_unspecified
        return self.name in _LOOPBACK_NAMES or self.name.endswith(".localhost")

    @property
    def is_private(self) -> bool:
        """Not a host of the public internet: loopback, private, link-local (cloud
        metadata at 169.254.169.254), unique-local, shared, reserved, multicast and
        documentation addresses (IPv4 embedded in IPv6 included), names of one label,
        and the names of ``_PRIVATE_SUFFIXES``."""
        if self.address is not None:
            return not _public(self.address)
        if "." not in self.name:
            # A name of one label is looked up through the visitor's own search
            # domains (http://intranet/, GCE's http://metadata/): never a public host.
            return True
        return any(
            self.name == suffix or self.name.endswith("." + suffix) for suffix in _PRIVATE_SUFFIXES
        )

    @property
    def labels(self) -> list[str]:
        return [] if self.address is not None else self.name.split(".")


def canonical_host(text: str) -> Host:
    """The canonical form of a bare host (``example.com``, ``[::1]``, ``127.1``), as
    a browser would read it in a URL. Raises InvalidTarget."""
    if ":" in text and not text.startswith("["):
        try:
            text = f"[{ipaddress.IPv6Address(text)}]"  # a bare IPv6 address
        except ValueError:
            raise InvalidTarget("bad-host", f"'{text}' is not a host name.") from None
    if not text or any(ch in text for ch in "/?#@\\"):
        raise InvalidTarget("bad-host", f"'{text}' is not a host name.")
    return from_url_host(_parsed_host(f"http://{text}/", text))


def _parsed_host(url: str, shown: str) -> str:
    try:
        return URL(url).hostname
    except ValueError:
        raise InvalidTarget("bad-host", f"'{shown}' is not a valid host name.") from None


def from_url_host(hostname: str) -> Host:
    """The canonical host of a URL's host as the WHATWG parser gave it (ada-url's
    ``hostname``: IPv4 already in dotted decimal, names already mapped and in
    A-labels, IPv6 in brackets). Raises InvalidTarget."""
    if not hostname:
        raise InvalidTarget("no-host", "The target URL has no host name.")
    if hostname.startswith("["):
        ipv6 = ipaddress.IPv6Address(hostname[1:-1])
        mapped = ipv6.ipv4_mapped
        return Host(str(ipv6), mapped if mapped is not None else ipv6)
    try:
        return Host(hostname, ipaddress.IPv4Address(hostname))
    except ValueError:
        pass
    name = hostname[:-1] if hostname.endswith(".") else hostname
    if not name or "" in name.split("."):
        raise InvalidTarget("bad-host", f"'{hostname}' has an empty label.")
    try:
        # Stricter than browsers (IDNA 2008: hyphens, label lengths, no '_'): a link
        # to a name DNS would refuse is a mistake or a trick.
        idna.encode(name)
    except idna.IDNAError as exc:
        raise InvalidTarget("bad-host", f"'{name}' is not a valid host name ({exc}).") from None
    return Host(name.lower())


def _public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return _public(embedded)
        if any(address in network for network in _NOT_GLOBAL):
            return False
    return not address.is_multicast and address.is_global


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (6to4, Teredo's client, NAT64, local-use
    NAT64, IPv4-translated, the deprecated IPv4-compatible form), if any."""
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _EMBEDDING) and int(address) > 0xFFFF:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


# UTS 39 section 5.1: Han, Hiragana, Katakana, Hangul and Bopomofo also count as the
# writing systems they are used in together.
_AUGMENTED = {
    "Hani": {"Hanb", "Jpan", "Kore"},
    "Hira": {"Jpan"},
    "Kana": {"Jpan"},
    "Hang": {"Kore"},
    "Bopo": {"Hanb"},
}
_ANY = frozenset({"Zyyy", "Zinh"})  # Common and Inherited: every script
# UTS 39 section 5.2, "Highly Restrictive": one script, or Latin with one of these.
_LATIN_WITH = (
    frozenset({"Latn", "Hani", "Hira", "Kana", "Jpan"}),
    frozenset({"Latn", "Hani", "Bopo", "Hanb"}),
    frozenset({"Latn", "Hani", "Hang", "Kore"}),
)


def _scripts(char: str) -> frozenset[str] | None:
    """The augmented Script_Extensions of ``char``; None for Common and Inherited."""
    scripts = set(unicodedataplus.script_extensions(char))
    if scripts & _ANY:
        return None
    for script in list(scripts):
        scripts |= _AUGMENTED.get(script, set())
    return frozenset(scripts)


def is_mixed_script(label: str) -> bool:
    """True unless ``label`` (a U-label) is "Highly Restrictive" in the sense of
    UTS 39: written in one script, or Latin with Japanese, Chinese or Korean."""
    sets = [s for s in map(_scripts, label) if s is not None]
    if not sets:
        return False
    resolved = frozenset.intersection(*sets)
    if resolved:
        return False
    return not any(all(s & allowed for s in sets) for allowed in _LATIN_WITH)


def confusable_labels(host: Host) -> list[str]:
    """The labels of ``host`` (as people read them, in Unicode) that mix scripts a
    reader could take for one another (``paypal`` with a Cyrillic U+0430 for its a)."""
    found = []
    for label in host.labels:
        if not label.startswith("xn--"):
            continue  # an ASCII label is all Latin (and Common)
        try:
            unicode_label = idna.decode(label)
        except idna.IDNAError:
            continue  # refused as a bad host before this is asked
        if is_mixed_script(unicode_label):
            found.append(unicode_label)
    return found
