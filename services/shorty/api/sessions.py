"""People's accounts: register, log in, refresh, log out.

Neither registration nor login tells whether an account exists: registration
answers 202 with the same body for a new and a taken address, login the same
401 for an unknown email and a wrong password, and each spends the same work
(one argon2 hash or check) either way. Login is limited per client IP, per
(account, client IP) — so nobody can lock another person out from one place —
and per account from everywhere, a higher cap against distributed guessing.
"""

from __future__ import annotations

import logging

import redis.asyncio as aredis
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shorty.api.auth import client_key, identify, within_limits
from shorty.api.body import read_json
from shorty.api.fields import EmailText, PasswordText
from shorty.bootstrap import api_deps_of
from shorty.cache.guard import REDIS_FAILURES, RedisGuard
from shorty.core.accounts import account_hash, normalize_email
from shorty.core.errors import DomainError, RefreshTokenReused
from shorty.obs.audit import audit
from shorty.store.sessions import Session
from shorty.web.problems import Problem


class Credentials(BaseModel):
    """Log in: any text is tried (a wrong one is the same 401 as a wrong password)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailText
    password: PasswordText


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(max_length=200)


class Registered(BaseModel):
    """The same answer whether the address was free or taken."""

    email: str
    detail: str = Field(
        "If this address was free, its account exists now: log in with it."
        " If it was taken, nothing changed."
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(max_length=1024)
    new_password: PasswordText


class TokenPair(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type, not a secret
    expires_in: int = Field(description="Seconds the access token is valid.")
    refresh_token: str = Field(description="Spend it on /auth/refresh; one use.")


log = logging.getLogger(__name__)
_NO_STORE = {"Cache-Control": "no-store"}


async def register(request: Request) -> Response:
    settings = api_deps_of(request).settings
    if not settings.registration_open:
        raise Problem(
            403, "registration-closed", "Registration closed", "Ask an admin for an account."
        )
    ip = client_key(request)
    await within_limits(request, [("register-ip:" + ip, settings.limits["login-ip"])])
    body = await read_json(request, Registration, settings.max_body_bytes)
    users = api_deps_of(request).users
    email, created = await users.register(
        body.email, body.password, reserved=settings.reserved_emails
    )
    account = account_hash(email)
    audit("iam", "register", outcome="success" if created else "failure", user__hash=account)
    registered = Registered(email=email)  # the same either way: see the module's docstring
    return JSONResponse(registered.model_dump(), status_code=202, headers=_NO_STORE)


async def login(request: Request) -> Response:
    settings = api_deps_of(request).settings
    body = await read_json(request, Credentials, settings.max_body_bytes)
    try:
        email = normalize_email(body.email)
    except DomainError:
        email = body.email.strip().lower()
    account = account_hash(email)
    ip = client_key(request)
    places = KnownPlaces(api_deps_of(request).redis, api_deps_of(request).redis_guard)
    checks = [
        ("login-ip:" + ip, settings.limits["login-ip"]),
        (f"login-email:{account}:{ip}", settings.limits["login-email"]),
    ]
    cap = settings.limits["login-account"]
    if cap is not None and not await places.known(account, ip):
        # The cap from everywhere together, against guessing from many places. A place
        # the account logged in from lately is spared it: others' wrong passwords
        # cannot lock the owner out where they usually are.
        checks.append(("login-account:" + account, cap))
    await within_limits(request, checks)
    users = api_deps_of(request).users
    user = await users.verify_password(email, body.password)
    if user is None or user.disabled:
        audit("authentication", "login", outcome="failure", user__hash=account)
        raise Problem(
            401, "invalid-credentials", "Login failed", "The email or the password is wrong."
        )
    audit("authentication", "login", user__id=user.id, user__hash=account)
    await places.remember(account, ip)
    return await _pair(request, await api_deps_of(request).sessions.start(user.id))


class KnownPlaces:
    """Where (client IP, or IPv6 /64) each account logged in from in the last
    ``KNOWN_DAYS`` days, in Redis. Without Redis (failed, or skipped by the process's
    ``RedisGuard``) no place is known: the cap holds."""

    KNOWN_DAYS = 30

    def __init__(self, client: aredis.Redis, guard: RedisGuard) -> None:
        self._redis = client
        self._guard = guard

    async def known(self, account: str, place: str) -> bool:
        if not self._guard.usable():
            return False
        try:
            known = bool(await self._redis.sismember(_PLACES.format(account), place))
        except REDIS_FAILURES as exc:
            self._guard.failed(exc)
            return False
        self._guard.succeeded()
        return known

    async def remember(self, account: str, place: str) -> None:
        if not self._guard.usable():
            log.info("login place not remembered: Redis skipped")
            return
        key = _PLACES.format(account)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.sadd(key, place)
                pipe.expire(key, self.KNOWN_DAYS * 86_400)
                await pipe.execute()
        except REDIS_FAILURES as exc:
            self._guard.failed(exc)
            log.warning("could not remember a login place: Redis unavailable")
        else:
            self._guard.succeeded()


_PLACES = "shorty:login-places:{}"


async def refresh(request: Request) -> Response:
    deps = api_deps_of(request)
    body = await read_json(request, RefreshRequest, deps.settings.max_body_bytes)
    sessions = deps.sessions
    try:
        session = await sessions.rotate(body.refresh_token)
    except RefreshTokenReused:
        # A spent token again: copied. Its whole session is ended; worth a look.
        audit("authentication", "refresh-token-reused", outcome="failure")
        raise
    if await deps.users.principal(session.user_id) is None:  # disabled since
        await sessions.end(session.refresh_token)
        raise Problem(401, "invalid-credentials", "Login failed", "This account is disabled.")
    return await _pair(request, session)


async def logout(request: Request) -> Response:
    deps = api_deps_of(request)
    body = await read_json(request, RefreshRequest, deps.settings.max_body_bytes)
    await deps.sessions.end(body.refresh_token)
    return Response(status_code=204)


async def change_password(request: Request) -> Response:
    """A new password, given the current one, from a login session only (never an
    API key: one that leaked must not take the account). Every other session of the
    account ends; the caller's stays. Tries count against the login limits."""
    principal = await identify(request)
    deps = api_deps_of(request)
    if principal.session is None:
        raise Problem(
            403,
            "insufficient-scope",
            "Login session required",
            "Change the password with an access token from /auth/login, not an API key.",
        )
    ip = client_key(request)
    account = f"user:{principal.user_id}"
    await within_limits(
        request,
        [
            ("login-ip:" + ip, deps.settings.limits["login-ip"]),
            (f"login-email:{account}:{ip}", deps.settings.limits["login-email"]),
        ],
    )
    body = await read_json(request, PasswordChange, deps.settings.max_body_bytes)
    if not await deps.users.change_password(
        principal.user_id, body.current_password, body.new_password
    ):
        audit("iam", "password-change", outcome="failure", user__id=principal.user_id)
        raise Problem(
            422,
            "validation-failed",
            "The request is not valid",
            "current_password: is not the account's password",
            errors=[{"field": "current_password", "message": "is not the account's password"}],
        )
    ended = await deps.sessions.end_others(principal.user_id, principal.session)
    audit("iam", "password-change", user__id=principal.user_id, shorty__sessions_ended=ended)
    return Response(status_code=204)


async def _pair(request: Request, session: Session) -> Response:
    tokens = api_deps_of(request).tokens
    pair = TokenPair(
        access_token=tokens.issue(session.user_id, session.family),
        expires_in=tokens.ttl,
        refresh_token=session.refresh_token,
    )
    return JSONResponse(pair.model_dump(), headers=_NO_STORE)
