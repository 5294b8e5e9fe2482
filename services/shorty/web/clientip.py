"""The client's address, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

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


def client_ip(scope: Scope, proxies: Sequence[Network]) -> str:
    """The peer's address; if the peer is a trusted proxy, the nearest untrusted
    address in X-Forwarded-For (walking from the right, as proxies append)."""
    client = scope.get("client")
    peer = client[0] if client else ""
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
