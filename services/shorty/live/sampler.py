"""Every service's figures, read at most once a second however many people watch:
each target's metrics and readiness are fetched side by side, each within
``TIMEOUT`` seconds, and compared with the previous read for the rates. A target
that does not answer is shown as down, with why; nothing is ever made up.

A target whose host names several addresses (a headless Service: one per pod) is
read at each of them, one card per address, so every replica shows."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from pydantic import AnyUrl

from shorty.live.figures import Scrape, breakers, chaos, parse, quantile, rate
from shorty.settings import LiveTarget

TIMEOUT = 0.8  # seconds for one target's metrics or readiness
FRESH = 0.5  # a read younger than this is served again
STALE = 5.0  # a previous read older than this gives no rates (not "the last second")
_REQUESTS = "shorty_http_request_duration_seconds"
_PROBES = (("route", "/livez"), ("route", "/readyz"))


@dataclass(slots=True)
class _Target:
    """One process read: its card's name, its URLs (a pod's address in them when its
    spec's host names several), and its previous read."""

    spec: LiveTarget
    name: str
    metrics: str
    health: str | None
    last: Scrape | None = None


Resolve = Callable[[str, int], Awaitable[list[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` names, sorted (within ``TIMEOUT``); an address is itself."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return [host]
    loop = asyncio.get_running_loop()
    found = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), TIMEOUT)
    return sorted({str(info[4][0]) for info in found})


@dataclass(slots=True)
class LiveSampler:
    targets: list[LiveTarget]
    resolver: Resolve = resolve
    _state: dict[tuple[str, str], _Target] = field(default_factory=dict)
    _session: aiohttp.ClientSession | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _snapshot: dict[str, Any] | None = None
    _taken: float = 0.0

    async def _expanded(self) -> list[_Target | dict[str, Any]]:
        """Each spec's processes now: one per address its metrics host names (the
        previous read of each kept), or a card saying the name did not resolve."""
        found = await asyncio.gather(
            *(self._addresses(spec) for spec in self.targets), return_exceptions=True
        )
        now: list[_Target | dict[str, Any]] = []
        kept: dict[tuple[str, str], _Target] = {}
        for spec, addresses in zip(self.targets, found, strict=True):
            if isinstance(addresses, BaseException):
                now.append(_unresolved(spec, addresses))
                continue
            for address in addresses:
                key = (spec.name, address)
                target = self._state.get(key) or _at(spec, address, len(addresses) > 1)
                kept[key] = target
                now.append(target)
        self._state = kept
        return now

    async def _addresses(self, spec: LiveTarget) -> list[str]:
        url = spec.metrics
        assert url.host is not None
        addresses = await self.resolver(url.host, url.port or 80)
        if not addresses:
            raise OSError("the name has no address")
        return addresses

    async def snapshot(self) -> dict[str, Any]:
        """Every target's figures now (or as read under ``FRESH`` seconds ago)."""
        async with self._lock:
            if self._snapshot is not None and time.monotonic() - self._taken < FRESH:
                return self._snapshot
            if self._session is None:
                timeout = aiohttp.ClientTimeout(total=TIMEOUT)
                self._session = aiohttp.ClientSession(timeout=timeout)
            session = self._session
            targets = await self._expanded()
            services = await asyncio.gather(*(self._shown(session, t) for t in targets))
            self._snapshot = {"at": time.time(), "services": list(services)}
            self._taken = time.monotonic()
            return self._snapshot

    async def _shown(
        self, session: aiohttp.ClientSession, target: _Target | dict[str, Any]
    ) -> dict[str, Any]:
        return target if isinstance(target, dict) else await self._read(session, target)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _read(self, session: aiohttp.ClientSession, target: _Target) -> dict[str, Any]:
        spec = target.spec
        metrics, health = await asyncio.gather(
            _fetch(session, target.metrics, json_body=False),
            _fetch(session, target.health, json_body=True) if target.health else _none(),
        )
        shown = _card(target.name, spec)
        if isinstance(health, dict):
            shown["ready"] = health.get("status") == "ready"
            for name, state in (health.get("checks") or {}).items():
                shown["dependencies"].setdefault(name, {})["health"] = state
        elif target.health:
            shown["ready"] = False
            shown["health_error"] = str(health)
        if not isinstance(metrics, str):
            shown["error"] = str(metrics)
            target.last = None
            return shown
        try:
            now = parse(metrics, time.monotonic())
            _figures(now, target, shown)
        except ValueError as exc:  # not a metrics page, or a sample that is no number
            shown["error"] = f"unreadable metrics: {exc}"
            shown["up"] = False
            target.last = None
        return shown


def _card(name: str, spec: LiveTarget) -> dict[str, Any]:
    """A card with nothing read yet."""
    return {
        "name": name,
        "kind": spec.kind,
        "up": False,
        "error": None,
        "ready": None,
        "health_error": None,
        "dependencies": {},
        "requests_per_second": None,
        "error_ratio": None,
        "p99_ms": None,
        "cache_hit_ratio": None,
        "clicks_per_second": None,
        "stream_lag": None,
        "dlq": None,
        "loop_lag_ms": None,
        "chaos": [],
    }


def _unresolved(spec: LiveTarget, exc: BaseException) -> dict[str, Any]:
    shown = _card(spec.name, spec)
    reason = "no answer" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
    shown["error"] = f"{spec.metrics.host} did not resolve: {reason}"
    return shown


def _at(spec: LiveTarget, address: str, several: bool) -> _Target:
    """The process at ``address`` of ``spec``: its URLs with the address for the host
    (the readiness URL too when it names the same host), named by it when the host
    names several."""
    host = spec.metrics.host
    shown = f"[{address}]" if ":" in address else address

    def there(url: AnyUrl | None) -> str | None:
        if url is None:
            return None
        if url.host != host:
            return str(url)
        port = f":{url.port}" if url.port else ""
        query = f"?{url.query}" if url.query else ""
        return f"{url.scheme}://{shown}{port}{url.path or '/'}{query}"

    metrics = there(spec.metrics)
    assert metrics is not None
    name = f"{spec.name} {address}" if several else spec.name
    return _Target(spec, name, metrics, there(spec.health))


def _figures(now: Scrape, target: _Target, shown: dict[str, Any]) -> None:
    """``shown`` filled from the read ``now`` (and the previous one, for the rates)."""
    spec = target.spec
    shown["up"] = True
    for name, state in breakers(now).items():
        shown["dependencies"].setdefault(name, {})["breaker"] = state
    shown["chaos"] = chaos(now)
    # Every process exports every metric (a worker's dead letters are 0 in the API):
    # each figure is read where it means something.
    if spec.kind == "worker":
        shown["dlq"] = int(now.total("shorty_dlq_length"))
        shown["stream_lag"] = int(now.total("shorty_stream_lag"))
    shown["loop_lag_ms"] = round(now.total("shorty_event_loop_lag_seconds") * 1000, 1)
    before, target.last = target.last, now
    if before is not None and now.at - before.at <= STALE:
        _rates(before, now, shown, spec.kind or "")


def _rates(before: Scrape, now: Scrape, shown: dict[str, Any], kind: str) -> None:
    if kind == "worker":
        clicks = rate(before, now, "shorty_clicks_ingested_total")
        shown["clicks_per_second"] = round(clicks, 2) if clicks is not None else None
        return
    served = _grown(before, now, _REQUESTS + "_count", lambda labels: True)
    failed = _grown(
        before, now, _REQUESTS + "_count", lambda labels: labels.get("status", "").startswith("5")
    )
    seconds = now.at - before.at
    shown["requests_per_second"] = round(served / seconds, 2)
    shown["error_ratio"] = round(failed / served, 4) if served > 0 else None
    p99 = quantile(before, now, _REQUESTS, 0.99, exclude=_PROBES)
    shown["p99_ms"] = round(p99 * 1000, 2) if p99 is not None else None
    if kind == "redirect":
        cached = sum(
            rate(before, now, "shorty_redirect_lookups_total", tier=tier) or 0.0
            for tier in ("lru", "redis")
        )
        every = rate(before, now, "shorty_redirect_lookups_total") or 0.0
        shown["cache_hit_ratio"] = round(cached / every, 4) if every > 0 else None
        clicks = rate(before, now, "shorty_clicks_flushed_total")
        shown["clicks_per_second"] = round(clicks, 2) if clicks is not None else None


def _grown(before: Scrape, now: Scrape, name: str, keep: Callable[[dict[str, str]], bool]) -> float:
    """How much the series of counter ``name`` that ``keep`` takes grew, the probes'
    (/livez, /readyz: the sampler's own reads among them) left out."""

    def total(scrape: Scrape) -> float:
        return sum(
            value
            for labels, value in scrape.values(name)
            if (found := dict(labels)).get("route") not in _PROBE_ROUTES and keep(found)
        )

    return max(total(now) - total(before), 0.0)


_PROBE_ROUTES = frozenset(route for _, route in _PROBES)


def _server_error(labels: dict[str, str]) -> bool:
    return labels.get("status", "").startswith("5")


async def _none() -> None:
    return None


async def _fetch(
    session: aiohttp.ClientSession, url: str, *, json_body: bool
) -> str | dict[str, Any] | Exception:
    """The body (text, or JSON for readiness, whose 503 still has a body), or the
    failure."""
    try:
        async with session.get(url) as answer:
            if json_body:
                body = await answer.json(content_type=None)
                return body if isinstance(body, dict) else ValueError("not a JSON object")
            if answer.status != 200:
                return RuntimeError(f"metrics answered {answer.status}")
            return await answer.text()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return _short(exc)


def _short(exc: Exception) -> Exception:
    if isinstance(exc, TimeoutError):
        return TimeoutError(f"no answer within {TIMEOUT} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ConnectionError("connection refused")
    return exc
