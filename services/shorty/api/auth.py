"""Bearer API keys and rate limits: who is calling, may they do this, and this often.

Every request makes exactly one rate-limit check: against its client IP alone
when it carries no valid key (so guessing keys is throttled too), or against
its key, its user and its client IP together once the key is known. A bulk
request spends one per item from each (``admit``'s ``cost``).
"""

from __future__ import annotations

import logging

from starlette.requests import Request

from shorty.api.tokens import looks_like_jwt
from shorty.bootstrap import api_deps_of
from shorty.core.accounts import SESSION_KEY_ID, Principal
from shorty.core.errors import DomainError
from shorty.core.limits import Limit, parse_limit
from shorty.obs.metrics import RATE_LIMIT_DECISIONS
from shorty.ratelimit.limiter import headers
from shorty.web.clientip import client_ip, rate_limit_key
from shorty.web.problems import Problem

log = logging.getLogger(__name__)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="shorty"'}
_DECISIONS = {
    True: RATE_LIMIT_DECISIONS.labels("api", "allowed"),
    False: RATE_LIMIT_DECISIONS.labels("api", "limited"),
}


async def authenticate(request: Request, scope: str) -> Principal:
    """The caller's principal if its key is valid, within its limits, and carries ``scope``."""
    return await admit(request, await identify(request), scope)


def client_key(request: Request) -> str:
    """What the caller's per-client limits count it under: its address (believed
    from trusted proxies only), an IPv6 one by its network."""
    settings = api_deps_of(request).settings
    return rate_limit_key(client_ip(request.scope, settings.trusted_proxies), settings.ipv6_prefix)


def _ip_check(request: Request) -> list[tuple[str, Limit | None]]:
    settings = api_deps_of(request).settings
    return [("ip:" + client_key(request), settings.limits["ip"])]


async def identify(request: Request) -> Principal:
    """The caller's principal if its key is valid; else 401, once the request is
    counted against its client IP. Its limits are ``admit``'s to check."""
    ip_check = _ip_check(request)
    header = request.headers.get("authorization")
    if not header:
        await within_limits(request, ip_check)
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "Send an API key as 'Authorization: Bearer <key>'.",
            headers=_CHALLENGE,
        )
    kind, _, raw = header.partition(" ")
    raw = raw.strip()
    if kind.lower() != "bearer" or not raw or len(raw) > 512:
        await within_limits(request, ip_check)
        raise Problem(
            401,
            "unauthenticated",
            "Authentication required",
            "The Authorization header must read 'Bearer <key>'.",
            headers=_CHALLENGE,
        )
    principal = await _principal(request, raw)
    if principal is None:
        await within_limits(request, ip_check)
        if looks_like_jwt(raw):
            raise Problem(
                401,
                "invalid-token",
                "Invalid access token",
                "This access token is invalid or expired; refresh it or log in again.",
                headers=_CHALLENGE,
            )
        raise Problem(
            401,
            "invalid-api-key",
            "Invalid API key",
            "This API key is unknown, revoked or expired.",
            headers=_CHALLENGE,
        )
    return principal


async def admit(request: Request, principal: Principal, scope: str, *, cost: int = 1) -> Principal:
    """``principal`` once ``cost`` (a bulk: its items) is spent from its key's, user's and
    client IP's limits, and if it carries ``scope``.

    A request refused for its scope is counted as one. So is a cost no limit could
    ever hold (more than its count), which would never pass: it is refused with
    413 ``bulk-too-large``, naming the most the caller may send at once."""
    settings = api_deps_of(request).settings
    checks = [
        (f"user:{principal.user_id}", _limit(principal.user_limit, settings.limits["user"])),
        *_ip_check(request),
    ]
    if principal.key_id != SESSION_KEY_ID:
        checks.append(
            (f"key:{principal.key_id}", _limit(principal.key_limit, settings.limits["key"]))
        )
        # A key minted by a key spends from every key above it too: it never escapes
        # a limit an admin puts on the key it came from.
        checks += [
            (f"key:{ancestor}", _limit(limit, settings.limits["key"]))
            for ancestor, limit in principal.ancestors
        ]
    most = min((limit.count for _, limit in checks if limit is not None), default=cost)
    allowed = principal.allows(scope)
    await within_limits(request, checks, cost=cost if allowed and cost <= most else 1)
    if not allowed:
        raise Problem(
            403,
            "insufficient-scope",
            "Insufficient scope",
            f"This API key lacks the '{scope}' scope.",
        )
    if cost > most:
        raise Problem(
            413,
            "bulk-too-large",
            "More items than your rate limit holds",
            f"This request holds {cost} items, and your rate limit allows {most} at once;"
            f" send them in parts of at most {most}.",
            limit=most,
        )
    return principal


async def _principal(request: Request, raw: str) -> Principal | None:
    """An API key, or an access token from /auth/login for a user still enabled."""
    if looks_like_jwt(raw):
        tokens = api_deps_of(request).tokens
        claims = tokens.verify(raw)
        if claims is None:
            return None
        users = api_deps_of(request).users
        return await users.principal(claims.user_id, claims.session)
    keys = api_deps_of(request).keys
    return await keys.authenticate(raw)


def _limit(override: str | None, default: Limit | None) -> Limit | None:
    if override is None:
        return default
    try:
        return parse_limit(override)
    except DomainError:
        log.error("ignoring a stored rate limit that does not parse: %r", override)
        return default


async def within_limits(
    request: Request, checks: list[tuple[str, Limit | None]], *, cost: int = 1
) -> None:
    """Spend ``cost`` from each of ``checks`` (None: no limit); 429 if one lacks it."""
    limiter = api_deps_of(request).limiter
    decision = await limiter.check(
        [(key, limit) for key, limit in checks if limit is not None], cost
    )
    request.scope.setdefault("state", {})["ratelimit"] = decision
    if decision.verdicts:  # a limit was checked (None for each: nothing decided)
        _DECISIONS[decision.allowed].inc()
    if not decision.allowed:
        shown = headers(decision)
        raise Problem(
            429,
            "rate-limited",
            "Too many requests",
            f"A rate limit was reached; retry in {shown['Retry-After']} s.",
            headers=shown,
        )
