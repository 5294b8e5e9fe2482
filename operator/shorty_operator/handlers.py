"""The kopf handlers: make Shorty's link match each ShortLink, and show how that went.

- resume, create, update (id ``upsert``) → upsert the link by its reference;
- a timer (id ``resync``, every ``Config.interval``) → put back a link deleted or
  edited behind the operator's back, and refresh ``status.clicks``;
- delete (id ``delete``; kopf keeps a finalizer on every ShortLink while it runs)
  → delete the link; one that is already gone is as good.

Each reconciliation comes to one ``Outcome``, shown once in the status; what
follows each reason (a warning, a retry, the timer's skip) is ``model.POLICY``.
``build_registry`` lists every handler with its id; the ``Config`` reaches them
through kopf's memo (``memo["config"]``, given to ``kopf.run``).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import kopf

from shorty.core.errors import CodeImmutable
from shorty.resilience.breaker import Breaker
from shorty_operator.client import ApiError, Conflict, Refused, ShortyClient, Unavailable
from shorty_operator.metrics import (
    DELETED,
    DURATION,
    READINESS,
    RECONCILES,
    RESULTS,
    SHORTLINKS,
    readiness,
)
from shorty_operator.model import (
    POLICY,
    InvalidSpec,
    Outcome,
    Reason,
    desired,
    drift,
    external_ref,
    ready,
    ready_condition,
    retry_delay,
    status,
)
from shorty_operator.peering import PeeringState
from shorty_operator.progress import ProgressStorage
from shorty_operator.tracing import reconcile_span, reconciled, repair_span

log = logging.getLogger("shorty_operator.reconcile")

GROUP, VERSION, PLURAL = "shorty.dev", "v1alpha1", "shortlinks"
RESOURCE = (GROUP, VERSION, PLURAL)
FINALIZER = "shorty.dev/link"  # held while the ShortLink's link may still exist in Shorty
RESYNC = "resync"  # the timer's id, as kopf's log lines name it


@dataclass(frozen=True)
class Config:
    api_url: str
    api_key: str = field(repr=False)
    interval: float = 60.0  # the timer: drift repair and status.clicks
    conflict_retry: float = 30.0  # how often a ShortLink whose code is taken tries again
    backoff: float = 5.0  # the first retry after ApiUnavailable; doubles to model.BACKOFF_MAX
    timeout: float = 10.0  # one call to the API
    # Calls to the API in flight at once; more wait for one to end (within `timeout`).
    concurrency: int = 10
    # The API's circuit breaker: this many failed calls in a row open it, and it lets one
    # call probe after `breaker_cooldown` seconds (0: it never opens).
    breaker_threshold: int = 5
    breaker_cooldown: float = 10.0
    # Watch the cluster's namespaces and CRDs for changes. Off when the operator is given
    # exact namespace names: it then needs no cluster-wide rights at all.
    scan_cluster: bool = True


def build_registry(config: Config) -> kopf.OperatorRegistry:
    """A registry holding the operator's handlers, each under a stable id (kopf names
    the progress annotations after it). Only the timer's interval is read here; the
    handlers read the rest of ``config`` from the memo."""
    registry = kopf.OperatorRegistry()
    kopf.on.login(id="login", registry=registry)(login)
    kopf.on.startup(id="startup", registry=registry)(startup)
    kopf.on.cleanup(id="cleanup", registry=registry)(cleanup)
    kopf.on.probe(id="peering", registry=registry)(peering)
    kopf.on.probe(id="api", registry=registry)(api)
    kopf.index(*RESOURCE, id=READINESS, registry=registry)(readiness)
    traced_upsert = reconcile_span("upsert")(upsert)  # a span per handler call
    kopf.on.resume(*RESOURCE, id="upsert", registry=registry)(traced_upsert)
    kopf.on.create(*RESOURCE, id="upsert", registry=registry)(traced_upsert)
    kopf.on.update(*RESOURCE, id="upsert", field="spec", registry=registry)(traced_upsert)
    kopf.timer(
        *RESOURCE,
        id=RESYNC,
        interval=config.interval,
        initial_delay=config.interval,
        registry=registry,
    )(reconcile_span(RESYNC, routine=True)(resync))
    kopf.on.delete(*RESOURCE, id="delete", registry=registry)(reconcile_span("delete")(delete))
    return registry


def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a pod: its service account; elsewhere: KUBECONFIG or ~/.kube/config."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


async def startup(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
    config: Config = memo["config"]
    SHORTLINKS.watch(kwargs[READINESS])  # shorty_operator_shortlinks{ready}
    memo["shorty"] = ShortyClient(
        config.api_url,
        config.api_key,
        timeout=config.timeout,
        connections=config.concurrency,
        breaker=Breaker(
            "api", threshold=config.breaker_threshold, cooldown=config.breaker_cooldown
        ),
    )
    # Our own names on the objects, not kopf's defaults.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = ProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.scanning.disabled = not config.scan_cluster
    # Not kopf's settings.queueing.worker_limit: a worker sleeps through a retry's delay
    # (Conflict, ApiUnavailable's backoff up to 5 min) in its slot, and idles 5 s in it
    # after; ten ShortLinks in retry would hold every other one (docs/operator.md).
    # At exit, a check under way (milliseconds, at most one API timeout) may finish
    # and write its status, rather than be left orphaned mid-call.
    settings.background.instant_exit_timeout = config.timeout
    # Every timer run that went well would log at INFO, for every ShortLink.
    logging.getLogger("kopf.objects").addFilter(_routine_ticks_to_debug)


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    client: ShortyClient | None = memo.get("shorty")
    if client is not None:
        await client.close()


async def peering(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """``/healthz`` shows whether kopf's peering lets the operator act (it stays 200:
    a restart changes nothing about another operator or a missing peering object)."""
    state: PeeringState | None = memo.get("peering")
    return state.report() if state is not None else {"state": "unknown"}


async def api(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    """``/healthz`` shows the state of the API's circuit breaker (it stays 200: a
    restart brings no API back)."""
    client: ShortyClient | None = memo.get("shorty")
    return client.health() if client is not None else {"breaker": "unknown"}


# One reconciliation of an object at a time (a per-object lock in kopf's per-object
# memo): a timer run never undoes an update the handler is making, and never puts
# back a link the delete handler has just deleted.


def _counted(handler: str, reason: Reason | None) -> None:
    """What a handler's reconcile came to (a Ready reason; None: deleted), in
    ``shorty_operator_reconciles_total`` and on its span."""
    RECONCILES.labels(handler, RESULTS[reason] if reason is not None else DELETED).inc()
    reconciled(reason.value if reason is not None else "Deleted")


async def upsert(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, **_: Any) -> None:
    """Resume, create, update: make the link match the spec."""
    async with _lock(memo):
        generation = body.metadata.get("generation")
        with DURATION.labels("upsert").time():
            outcome = await _upsert(body, memo)
        _show(body, patch, memo, outcome, generation)
    _counted("upsert", outcome.reason)
    delay = _retry_delay(memo, outcome.reason, retry)
    if delay is not None:
        raise kopf.TemporaryError(POLICY[outcome.reason].failure, delay=delay)


async def resync(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    """The timer: put back a link that went missing or drifted; refresh the clicks."""
    stopped = kwargs.get("stopped")  # kopf's flag: the object is going, or the operator
    async with _lock(memo):
        # The body is live: checked once the lock is held, not before.
        if stopped or body.metadata.get("deletionTimestamp"):
            return  # being deleted: the link is the delete handler's now
        generation = body.metadata.get("generation")
        shown, shown_for = _shown(body, memo)
        if shown is not None and not POLICY[shown].timer_checks and shown_for == generation:
            return  # refused as it is: nothing to check until the spec changes
        with DURATION.labels("timer").time():
            outcome = await _upsert(body, memo, repair=True)
        _show(body, patch, memo, outcome, generation)
    _counted("timer", outcome.reason)


async def delete(
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, retry: int, logger: Any, **_: Any
) -> None:
    """Delete the link; one already gone is as good."""
    client: ShortyClient = memo["shorty"]
    ref = _ref(body)
    try:
        async with _lock(memo):
            with DURATION.labels("delete").time():
                existed = await client.delete(ref)
    except ApiError as exc:
        _counted("delete", Reason.API_UNAVAILABLE)
        outcome = Outcome(Reason.API_UNAVAILABLE, f"Deleting the link: {exc.message}")
        _show(body, patch, memo, outcome, body.metadata.get("generation"))
        delay = _retry_delay(memo, outcome.reason, retry)
        raise kopf.TemporaryError(exc.message, delay=delay) from None
    _counted("delete", None)
    logger.info("link %s %s", ref, "deleted" if existed else "was already gone")


def _routine_ticks_to_debug(record: logging.LogRecord) -> bool:
    """kopf logs "Timer 'resync' succeeded." at INFO each tick, for each ShortLink: make
    it DEBUG (so it is neither logged at INFO nor posted as an event)."""
    if record.levelno == logging.INFO and record.getMessage() == f"Timer {RESYNC!r} succeeded.":
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


def _lock(memo: kopf.Memo) -> asyncio.Lock:
    lock = memo.get("lock")
    if lock is None:
        lock = memo["lock"] = asyncio.Lock()
    return lock


def _retry_delay(memo: kopf.Memo, reason: Reason, retry: int) -> float | None:
    """When kopf tries the handler again: never while the API's breaker would refuse
    the call (kopf would only come back to fail at once, in a loop)."""
    config: Config = memo["config"]
    client: ShortyClient = memo["shorty"]
    return retry_delay(
        reason,
        retry,
        steady=config.conflict_retry,
        backoff=config.backoff,
        at_least=client.retry_in(),
    )


async def _upsert(body: kopf.Body, memo: kopf.Memo, repair: bool = False) -> Outcome:
    """Make the link match the spec, and say what that came to. With ``repair`` (the
    timer) the link is read first, and only written back when it drifted. What the
    spec asks for is read before any wait (the body is live: a newer spec may arrive
    meanwhile, and is the next call's): the outcome is for the generation the caller
    read just before."""
    client: ShortyClient = memo["shorty"]
    try:
        want = desired(body.spec)
    except InvalidSpec as exc:
        return Outcome(Reason.INVALID_SPEC, str(exc))
    ref = _ref(body)
    # A link Shorty gave a code to keeps it when it has to be made again: its short URL
    # is out there. (Given up if that code went to another link meanwhile.)
    known: str | None = body.status.get("code")
    try:
        link = await client.get(ref) if repair else None
        changed = [] if link is None else drift(want, link)
        if link is None or changed:
            with repair_span(body, changed) if repair else nullcontext():
                link, created = await _put(client, ref, want, None if "alias" in want else known)
                if repair and (known or not created):
                    what = "was missing" if created else f"had drifted ({', '.join(changed)})"
                    kopf.info(body, reason="Restored", message=f"The link {what}; put back.")
    except Conflict as exc:
        if exc.kind == CodeImmutable.slug:
            return Outcome(Reason.INVALID_SPEC, exc.message)
        return Outcome(Reason.CONFLICT, exc.message)
    except Refused as exc:
        return Outcome(Reason.INVALID_SPEC, exc.message)
    except Unavailable as exc:
        return Outcome(Reason.API_UNAVAILABLE, exc.message)
    return Outcome(Reason.SYNCED, f"{link['short_url']} redirects to the target.", link)


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
    body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, outcome: Outcome, generation: int | None
) -> None:
    """Patch the status with ``outcome`` for ``generation``; a warning event when the
    reason warns and is new (whoever finds it first: a handler or the timer; not at
    every retry)."""
    reason = outcome.reason
    condition = ready(reason, outcome.message, generation)
    patch.status.update(status(condition, body.status, link=outcome.link))
    if POLICY[reason].warns and _shown(body, memo) != (reason, generation):
        kopf.warn(body, reason=reason.value, message=outcome.message)
        meta = body.metadata
        log.warning(
            "ShortLink %s/%s: %s: %s",
            meta.namespace,
            meta.name,
            reason.value,
            outcome.message,
            extra=_reconcile_failure(body, reason),
        )
    # Remembered here too: kopf writes the status after the handler, and the lock is
    # free before that, so the body may not show it yet to the next one in.
    memo["shown"] = (reason, generation)


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


def _reconcile_failure(body: kopf.Body, reason: Reason) -> dict[str, object]:
    """The ECS fields of a failed reconciliation's log line (what Kibana's "operator
    reconcile failures" counts)."""
    meta = body.metadata
    return {
        "event.kind": "event",
        "event.action": "reconcile",
        "event.outcome": "failure",
        "event.reason": reason.value,
        "orchestrator.api_version": body.get("apiVersion", ""),
        "orchestrator.resource.type": body.get("kind", ""),
        "orchestrator.namespace": meta.namespace or "",
        "orchestrator.resource.name": meta.name or "",
        "orchestrator.resource.id": meta.uid or "",
    }


def _ref(body: kopf.Body) -> str:
    meta = body.metadata
    return external_ref(meta.namespace or "", meta.name or "", meta.uid or "")
