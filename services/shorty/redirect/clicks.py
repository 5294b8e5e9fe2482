"""What one click records: no IP address, only a salted, daily-rotating visitor hash.

The hash lets the analytics count distinct visitors per day without being
able to recognise anyone across days or recover an address. The stream entry
also carries the visitor's network (the address with its last IPv4 octet or
last 80 IPv6 bits zeroed), which the worker uses for the country and then
drops: PostgreSQL never sees it.

Each click gets its id here, at the redirect, and every copy of it carries that
id: the copy a timed-out write left in Redis, the retry's, a redelivery, a
replay. The worker stores one click per (id, time), so each redirect counts once.
The same id is the redirect's request id (``X-Request-ID``, ``http.request.id``)
unless the caller sent one: an access line and its click name each other.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

STREAM = "shorty:clicks"
STREAM_MAXLEN = 1_000_000  # approximate cap, so an idle worker cannot exhaust Redis memory
DAY_MS = 86_400_000

_daily: dict[tuple[bytes, int], hashlib.blake2b] = {}


def visitor_hash(secret: bytes, ip: str, user_agent: str, now_ms: int) -> str:
    """BLAKE2b keyed with ``secret`` over (day, ip, user agent), 16 hex digits."""
    day = now_ms // DAY_MS
    base = _daily.get((secret, day))
    if base is None:  # keyed set-up once a day; each click then copies the state
        _daily.clear()
        base = _daily[(secret, day)] = hashlib.blake2b(
            str(day).encode() + b"\0", key=secret[:64], digest_size=8
        )
    digest = base.copy()
    digest.update(f"{ip}\0{user_agent}".encode())
    return digest.hexdigest()


def network_of(ip: str) -> str:
    """The /24 (IPv4) or /48 (IPv6) network holding ``ip``; "" for anything else."""
    if ":" not in ip:
        head, dot, _ = ip.rpartition(".")
        return f"{head}.0" if dot and head.count(".") == 2 else ""
    try:
        return str(ipaddress.IPv6Network((ip, 48), strict=False).network_address)
    except ValueError:
        return ""


def next_click_id() -> str:
    """A new click id: 32 random hex digits (the shape of the request ids the request
    log makes). Random, not a counter: a redirect's id is also its X-Request-ID, and
    consecutive ids would tell anyone how many requests a pod served between two of
    theirs and which pod answered. Never a "-", so none equals a stream entry ID (the
    key of clicks written before there were ids)."""
    return os.urandom(16).hex()


# The order of a click's fields; the stream entry carries them under these names
# ("id" is the link's id, "cid" the click's own).
FIELDS = ("code", "id", "ts", "ref", "ua", "vh", "net", "cid")
Click = tuple[str, str, str, str, str, str, str, str]


def click_fields(
    code: str,
    link_id: int,
    headers: Iterable[tuple[bytes, bytes]],
    ip: str,
    now_ms: int,
    secret: bytes,
) -> Click:
    """What one click records (in FIELDS order), from the request's raw ASGI headers.
    Whether the user agent is a bot is decided by the worker, off the hot path."""
    referrer: bytes | None = None
    user_agent = ""
    for name, value in headers:
        if name == b"referer":
            referrer = value
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")[:512]
    return click_of(code, link_id, now_ms, referrer, user_agent, ip, secret, next_click_id())


def click_of(
    code: str,
    link_id: int,
    now_ms: int,
    referrer: bytes | None,
    user_agent: str,
    ip: str,
    secret: bytes,
    click_id: str,
) -> Click:
    """``click_fields`` from what the redirect has already read off the request: the
    raw Referer (or None), the user agent as the access line writes it (at most 512
    characters), the client's address and the click's id (``next_click_id``)."""
    referrer_host = ""
    if referrer:
        with contextlib.suppress(ValueError):
            referrer_host = (urlsplit(referrer.decode("latin-1")).hostname or "")[:255]
        if not referrer_host.isprintable():
            referrer_host = referrer_host.translate(_SEPARATORS)
    # The link id keeps a click from being counted for a later link with the same code.
    vh = visitor_hash(secret, ip, user_agent, now_ms)
    net = network_of(ip)
    if not user_agent.isprintable():  # the separators of a batch (clickbuffer.py) never in it
        user_agent = user_agent.translate(_SEPARATORS)
    return (code, str(link_id), str(now_ms), referrer_host, user_agent, vh, net, click_id)


# What separates clicks and their values in a batch sent to Redis (clickbuffer.py);
# the other values (code, digits, hex, an address) cannot hold them.
_SEPARATORS = {0x1E: " ", 0x1F: " "}
