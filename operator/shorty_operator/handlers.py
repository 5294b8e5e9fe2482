"""The kopf handlers: make Shorty's link match each ShortLink, and show how that went.

- resume, create, update → upsert the link by its reference, then the status;
- a timer (``Config.interval``) → put back a link deleted or edited behind the
  operator's back, and refresh ``status.clicks``;
- delete (kopf keeps a finalizer on every ShortLink while it runs) → delete
  the link; one that is already gone is as good.

Failures become the Ready condition: Conflict (retried every
``Config.conflict_retry`` seconds until the code frees up), InvalidSpec (not
retried until the spec changes) and ApiUnavailable (retried with exponential
backoff from ``Config.backoff`` up to ``BACKOFF_MAX``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import kopf
from prometheus_client import Counter, Histogram

from shorty.core.errors import CodeImmutable
from shorty_operator.client import ApiError, Conflict, Refused, ShortyClient, Unavailable
from shorty_operator.model import (
    InvalidSpec,
    Reason,
    desired,
    drift,
    external_ref,
    ready,
    ready_condition,
    status,
)

GROUP, VERSION, PLURAL = "shorty.dev", "v1alpha1", "shortlinks"
FINALIZER = "shorty.dev/link"  # held while the ShortLink's link may still exist in Shorty
BACKOFF_MAX = 300.0

RECONCILES = Counter(
    "shorty_operator_reconciles_total",
    "ShortLink reconciliations, by handler and result (the Ready reason, or Deleted)",
    ["handler", "result"],
)
DURATION = Histogram(
    "shorty_operator_reconcile_duration_seconds",
    "Time spent reconciling a ShortLink, by handler",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@dataclass(frozen=True)
class Config:
    api_url: str
    api_key: str = field(repr=False)
    interval: float = 60.0  # the timer: drift repair and status.clicks
    conflict_retry: float = 30.0  # how often a ShortLink whose code is taken tries again
    backoff: float = 5.0  # the first retry after ApiUnavailable; doubles up to BACKOFF_MAX
    timeout: float = 10.0  # one call to the API
    # Watch the cluster's namespaces and CRDs for changes. Off when the operator is given
    # exact namespace names: it then needs no cluster-wide rights at all.
    scan_cluster: bool = True


def build_registry(config: Config) -> kopf.OperatorRegistry:
    """A registry holding the operator's handlers for ``config``."""
    registry = kopf.OperatorRegistry()
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        """In a pod: its service account; elsewhere: KUBECONFIG or ~/.kube/config."""
        return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def start(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        memo["shorty"] = ShortyClient(config.api_url, config.api_key, timeout=config.timeout)
        # Our own names on the objects, not kopf's defaults.
        settings.persistence.finalizer = FINALIZER
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        settings.scanning.disabled = not config.scan_cluster
        # At exit, a check under way (milliseconds, at most one API timeout) may finish
        # and write its status, rather than be left orphaned mid-call.
        settings.background.instant_exit_timeout = config.timeout

    @kopf.on.cleanup(registry=registry)
    async def stop(memo: kopf.Memo, **_: Any) -> None:
        client: ShortyClient | None = memo.get("shorty")
        if client is not None:
            await client.close()

    # One reconciliation of an object at a time (a per-object lock in kopf's per-object
    # memo): a timer run never undoes an update the handler is making, and never puts
    # back a link the delete handler has just deleted.

    @kopf.on.resume(*resource, registry=registry)
    @kopf.on.create(*resource, registry=registry)
    @kopf.on.update(*resource, field="spec", registry=registry)
    async def upsert(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any
    ) -> None:
        async with _lock(memo):
            with DURATION.labels("upsert").time():
                reason = await _upsert(body, patch, memo)
        RECONCILES.labels("upsert", reason.value).inc()
        if reason is Reason.CONFLICT:
            raise kopf.TemporaryError("the code is taken", delay=config.conflict_retry)
        if reason is Reason.API_UNAVAILABLE:
            raise kopf.TemporaryError("Shorty is unavailable", delay=_backoff(config, retry))

    @kopf.timer(
        *resource, interval=config.interval, initial_delay=config.interval, registry=registry
    )
    async def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
        stopped = kwargs.get("stopped")  # kopf's flag: the object is going, or the operator
        async with _lock(memo):
            # The body is live: checked once the lock is held, not before.
            if stopped or body.metadata.get("deletionTimestamp"):
                return  # being deleted: the link is the delete handler's now
            if _shown(body, memo) == (Reason.INVALID_SPEC, body.metadata.get("generation")):
                return  # refused as it is: nothing to check until the spec changes
            with DURATION.labels("timer").time():
                reason = await _upsert(body, patch, memo, repair=True)
        RECONCILES.labels("timer", reason.value).inc()

    @kopf.on.delete(*resource, registry=registry)
    async def remove(
        body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, logger: Any, **_: Any
    ) -> None:
        client: ShortyClient = memo["shorty"]
        ref = _ref(body)
        try:
            async with _lock(memo):
                with DURATION.labels("delete").time():
                    existed = await client.delete(ref)
        except ApiError as exc:
            RECONCILES.labels("delete", Reason.API_UNAVAILABLE.value).inc()
            generation = body.metadata.get("generation")
            message = f"Deleting the link: {exc.message}"
            _show(body, patch, memo, Reason.API_UNAVAILABLE, message, generation)
            raise kopf.TemporaryError(exc.message, delay=_backoff(config, retry)) from None
        RECONCILES.labels("delete", "Deleted").inc()
        logger.info("link %s %s", ref, "deleted" if existed else "was already gone")

    return registry


def _lock(memo: kopf.Memo) -> asyncio.Lock:
    lock = memo.get("lock")
    if lock is None:
        lock = memo["lock"] = asyncio.Lock()
    return lock


async def _upsert(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, repair: bool = False
) -> Reason:
    """Make the link match the spec and show the outcome in the status. With ``repair``
    (the timer) the link is read first, and only written back when it drifted. What the
    spec asks for and its generation are read together, before any wait (the body is
    live: a newer spec may arrive meanwhile, and is the next call's)."""
    client: ShortyClient = memo["shorty"]
    generation = body.metadata.get("generation")
    try:
        want = desired(body.spec)
    except InvalidSpec as exc:
        return _show(body, patch, memo, Reason.INVALID_SPEC, str(exc), generation)
    ref = _ref(body)
    # A link Shorty gave a code to keeps it when it has to be made again: its short URL
    # is out there. (Given up if that code went to another link meanwhile.)
    known: str | None = body.status.get("code")
    try:
        link = await client.get(ref) if repair else None
        changed = [] if link is None else drift(want, link)
        if link is None or changed:
            link, created = await _put(client, ref, want, None if "alias" in want else known)
            if repair and (known or not created):
                what = "was missing" if created else f"had drifted ({', '.join(changed)})"
                kopf.info(body, reason="Restored", message=f"The link {what}; put back.")
    except Conflict as exc:
        if exc.kind == CodeImmutable.slug:
            return _show(body, patch, memo, Reason.INVALID_SPEC, exc.message, generation)
        return _show(body, patch, memo, Reason.CONFLICT, exc.message, generation)
    except Refused as exc:
        return _show(body, patch, memo, Reason.INVALID_SPEC, exc.message, generation)
    except Unavailable as exc:
        return _show(body, patch, memo, Reason.API_UNAVAILABLE, exc.message, generation)
    message = f"{link['short_url']} redirects to the target."
    return _show(body, patch, memo, Reason.SYNCED, message, generation, link=link)


async def _put(
    client: ShortyClient, ref: str, want: dict[str, Any], keep: str | None
) -> tuple[dict[str, Any], bool]:
    """PUT ``want``; with ``keep`` (the code the status shows, for a spec without one)
    ask for that code, and without it if the API says it cannot be had."""
    if keep is None:
        return await client.put(ref, want)
    try:
        return await client.put(ref, {**want, "alias": keep})
    except Conflict:  # taken by another link, or the link has another code after all
        return await client.put(ref, want)


def _show(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    reason: Reason,
    message: str,
    generation: int | None,
    *,
    link: dict[str, Any] | None = None,
) -> Reason:
    """Patch the status with the outcome for ``generation``; a warning event when a
    failure is new (whoever finds it first: a handler or the timer; not at every retry)."""
    condition = ready(reason, message, generation)
    patch.status.update(status(condition, body.status, link=link))
    if reason is not Reason.SYNCED and _shown(body, memo) != (reason, generation):
        kopf.warn(body, reason=reason.value, message=message)
    # Remembered here too: kopf writes the status after the handler, and the lock is
    # free before that, so the body may not show it yet to the next one in.
    memo["shown"] = (reason, generation)
    return reason


def _shown(body: kopf.Body, memo: kopf.Memo) -> tuple[Reason | None, int | None]:
    """The last outcome shown, and for which generation: as this process last reported
    it, else (after a restart) as the status says."""
    if "shown" in memo:
        shown: tuple[Reason, int | None] = memo["shown"]
        return shown
    before = ready_condition(body.status) or {}
    try:
        reason = Reason(str(before.get("reason")))
    except ValueError:
        return None, None
    return reason, before.get("observedGeneration")


def _ref(body: kopf.Body) -> str:
    meta = body.metadata
    return external_ref(meta.namespace or "", meta.name or "", meta.uid or "")


def _backoff(config: Config, retry: int) -> float:
    return float(min(config.backoff * 2 ** min(retry, 16), BACKOFF_MAX))
