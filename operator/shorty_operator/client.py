"""The operator's only way into Shorty: the API's links declared by reference
(``/api/v1/refs?ref=``), with an API key. Never PostgreSQL directly.

Every failure is one of three kinds, which the handlers turn into the Ready
condition: ``Conflict`` (409: the code is another link's), ``Refused`` (another
4xx: Shorty will not take this spec) and ``Unavailable`` (Shorty could not be
reached, answered 5xx or 429, or refused the operator's own key).

Every call passes through one circuit breaker (``shorty.resilience.breaker``, the
services' own, named ``api``): a call that could not reach the API, timed out or
got a 5xx counts as a failure; any other answer, 4xx included, is the API working.
While the breaker is open the client raises ``Unavailable`` at once, without a
call, so a ShortLink retried or checked during an outage costs the API nothing
(``retry_in`` says how long; the handlers wait at least that long)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from shorty.core.errors import LinkNotFound, QuotaExceeded
from shorty.resilience.breaker import Breaker
from shorty_operator.tracing import api_trace_configs


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind  # the problem type's last part, e.g. "alias-taken"


class Conflict(ApiError):
    """409: the code belongs to another link, or the reference to another user's; or
    403 quota-exceeded: the operator's account owns as many links as it may."""


class Refused(ApiError):
    """A 4xx about the spec itself (422 and its kind): not worth retrying as it is."""


class Unavailable(ApiError):
    """Shorty could not do it now: unreachable, timed out, 5xx, 429, or the key refused;
    or the circuit breaker refused the call, for ``retry_in`` seconds more."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        kind: str | None = None,
        *,
        retry_in: float = 0.0,
    ) -> None:
        super().__init__(message, status, kind)
        self.retry_in = retry_in


class ShortyClient:
    """PUT/GET/DELETE of the link declared under a reference."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        connections: int = 10,
        breaker: Breaker | None = None,
    ) -> None:
        """``timeout``: one call, waiting for a connection included; ``connections``: the
        most calls in flight (more wait for one to finish, within their timeout);
        ``breaker``: the API's circuit breaker (none: every call is made)."""
        self._base = base_url.rstrip("/")
        self._timeout = timeout
        self.breaker = breaker
        self._last_failure = ""  # what the last failed call met, for calls refused after it
        self._shown = _without_credentials(self._base)  # for messages, status and events
        # The calls in flight, at most: a call takes a slot before it asks the breaker, so
        # calls that waited for one are refused once the breaker has opened meanwhile
        # (in aiohttp's connection queue they would all still go out).
        self._slots = asyncio.Semaphore(connections)
        self._session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": "shorty-operator"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(limit=connections),
            trace_configs=api_trace_configs(),  # a span per call; the traceparent sent
        )

    async def close(self) -> None:
        await self._session.close()

    async def put(self, ref: str, fields: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Make the link declared as ``ref`` hold ``fields``: (link, created)."""
        status, body = await self._call("PUT", ref, fields)
        return body, status == 201

    async def get(self, ref: str) -> dict[str, Any] | None:
        status, body = await self._call("GET", ref, missing_ok=True)
        return None if status == 404 else body

    async def delete(self, ref: str) -> bool:
        """Delete the link; False when there was none (which is as good). Only the API's
        own "no such link" counts as none: any other 404 (a wrong URL) is Unavailable."""
        status, _ = await self._call("DELETE", ref, missing_ok=True)
        return status == 204

    def retry_in(self) -> float:
        """Seconds until the breaker lets a call through again (0: it does now)."""
        return self.breaker.retry_in() if self.breaker is not None else 0.0

    def health(self) -> dict[str, Any]:
        """What ``/healthz`` shows under ``api``."""
        if self.breaker is None:
            return {"breaker": "off"}
        return {
            "breaker": self.breaker.state,
            "threshold": self.breaker.threshold,
            "cooldown": self.breaker.cooldown,
        }

    async def _call(
        self, method: str, ref: str, body: dict[str, Any] | None = None, missing_ok: bool = False
    ) -> tuple[int, Any]:
        deadline = asyncio.get_running_loop().time() + self._timeout  # waiting included
        try:
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        except TimeoutError:  # the calls in flight are slow: they tell the breaker
            raise Unavailable(self._late()) from None
        try:
            status, payload = await self._answer(method, ref, body, deadline)
        finally:
            self._slots.release()
        if status < 300:
            return status, payload
        detail, kind = _problem(payload)
        if status == 404 and missing_ok and kind == LinkNotFound.slug:
            return status, payload
        message = f"Shorty answered {status}: {detail}"
        if status == 409 or kind == QuotaExceeded.slug:
            # The account's link quota is spent: like a taken code, it may free up.
            raise Conflict(message, status, kind)
        if status in (401, 403):
            raise Unavailable(
                f"Shorty refused the operator's API key ({status}: {detail});"
                " it needs the urls:read and urls:write scopes",
                status,
                kind,
            )
        if status in (404, 405):  # not a link's answer: no such route here
            raise Unavailable(
                f"{self._shown} has no Shorty API of this version ({status}); check --api-url",
                status,
                kind,
            )
        if status == 429:
            raise Unavailable(message, status, kind)
        raise Refused(message, status, kind)

    async def _answer(
        self, method: str, ref: str, body: dict[str, Any] | None, deadline: float
    ) -> tuple[int, Any]:
        """The API's answer below 500, through the breaker: ``Unavailable`` (and a
        failure told to the breaker) for none or a 5xx; at once while it is open."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow():
            raise Unavailable(
                f"{self._last_failure}; the operator's circuit breaker is open: it calls the"
                f" API again once {breaker.cooldown:g} s have passed (--breaker-cooldown)",
                retry_in=breaker.retry_in(),
            )
        try:
            status, payload = await self._send(method, ref, body, deadline)
            if status >= 500:
                detail, kind = _problem(payload)
                raise Unavailable(f"Shorty answered {status}: {detail}", status, kind)
        except Unavailable as exc:
            self._last_failure = exc.message
            if breaker is not None:  # its log line names what the call met
                breaker.failed(exc.__cause__ or exc)
            raise
        except BaseException:  # cancelled: no verdict on the API
            if breaker is not None:
                breaker.released()
            raise
        if breaker is not None:
            breaker.succeeded()  # it answered: a 4xx is the API working
        return status, payload

    async def _send(
        self, method: str, ref: str, body: dict[str, Any] | None, deadline: float
    ) -> tuple[int, Any]:
        """One request, by ``deadline``: its status and JSON body; ``Unavailable`` when
        there was no answer. (aiohttp makes a second attempt at an idempotent request
        whose connection dropped: PUT, GET and DELETE by reference are.)"""
        url = f"{self._base}/api/v1/refs"
        left = max(0.001, deadline - asyncio.get_running_loop().time())
        try:
            async with self._session.request(
                method,
                url,
                params={"ref": ref},
                json=body,
                timeout=aiohttp.ClientTimeout(total=left),
            ) as response:
                status = response.status
                payload = await response.json(content_type=None) if status != 204 else None
        except TimeoutError as exc:  # aiohttp's own timeouts are TimeoutErrors too
            raise Unavailable(self._late()) from exc
        except (aiohttp.ClientError, ValueError) as exc:
            raise Unavailable(
                f"Shorty's API at {self._shown} cannot be reached: {_why(exc)}"
            ) from exc
        return status, payload

    def _late(self) -> str:
        return (
            f"Shorty's API at {self._shown} did not answer within {self._timeout:g} s"
            " (--api-timeout)"
        )


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + parts.path


def _problem(payload: Any) -> tuple[str, str | None]:
    if not isinstance(payload, dict):
        return "(no problem details)", None
    kind = str(payload.get("type", "")).rsplit("/", 1)[-1] or None
    return str(payload.get("detail") or payload.get("title") or "(no detail)"), kind


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
