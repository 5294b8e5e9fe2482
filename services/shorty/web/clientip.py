"""The client's address, believing X-Forwarded-For only from trusted proxies, and
the key a per-client rate limit counts it under."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def peer_of(scope: Scope) -> str:
    """The address the connection comes from ("" when the server gives none); an IPv4
    peer is its IPv4 address even when the server listens on both families (granian
    on ``::`` gives ``::ffff:198.51.100.7``)."""
    client = scope.get("client")
    peer: str = client[0] if client else ""
    if peer.startswith("::ffff:") and "." in peer:
        return peer[7:]
    return peer


def client_ip(scope: Scope, proxies: Sequence[Network]) -> str:
    """The peer's address; if the peer is a trusted proxy, the nearest untrusted
    address in X-Forwarded-For (walking from the right, as proxies append); the peer
    as ``peer_of`` gives it."""
    peer = peer_of(scope)
    if not proxies or not _trusted(peer, proxies):
        return peer
    forwarded = b",".join(value for name, value in scope["headers"] if name == b"x-forwarded-for")
    hops = [hop.strip() for hop in forwarded.decode("latin-1").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or broken header: fall back to what we saw
    return hops[0] if hops else peer


def is_https(scope: Scope, proxies: Sequence[Network]) -> bool:
    """Whether the browser reached us over TLS: the connection's own scheme, or the
    last X-Forwarded-Proto a trusted proxy (one terminating TLS) set."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    if not proxies or not _trusted(peer_of(scope), proxies):
        return False
    forwarded = [value for name, value in scope["headers"] if name == b"x-forwarded-proto"]
    last = forwarded[-1].decode("latin-1").split(",")[-1].strip().lower() if forwarded else ""
    return last == "https"


@functools.lru_cache(maxsize=4096)  # parsing and printing an IPv6 address take ~8 µs
def rate_limit_key(address: str, ipv6_prefix: int) -> str:
    """What every per-client-IP limit counts ``address`` under: an IPv4 address is
    itself (an IPv4-mapped IPv6 address too: ``::ffff:198.51.100.7`` is
    ``198.51.100.7``); an IPv6 address is its ``/ipv6_prefix`` network, since one
    subscriber is routinely given a whole /64 and could take a fresh address for
    each request. Anything that is no address is kept as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    host_bits = 128 - ipv6_prefix
    return f"{ipaddress.IPv6Address(int(ip) >> host_bits << host_bits)}/{ipv6_prefix}"
