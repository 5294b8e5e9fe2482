"""The operator's metrics (on ``--metrics-port``, beside the API breaker's and
``shorty_build_info``):

- ``shorty_operator_reconciles_total{handler, result}``: handler ``upsert`` (resume,
  create, update), ``timer`` or ``delete``; result what the reconciliation came to,
  ``RESULTS`` of its Ready reason: ``ok``, ``retry`` (the API was unavailable; kopf
  tries again), ``error`` (a spec Shorty refuses; not retried until it changes) or
  ``conflict`` (the code is another link's; tried again steadily);
- ``shorty_operator_reconcile_duration_seconds{handler}``: a histogram;
- ``shorty_operator_shortlinks{ready}``: the ShortLinks the operator watches, by
  their Ready condition as the cluster holds it (``true``; ``false`` also for one
  without the condition yet). Read at each scrape from a kopf index
  (``readiness``), which kopf keeps up to date from the watch it already makes:
  no call to the cluster, and a ShortLink another operator wrote counts too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shorty_operator.model import Reason, ready_condition

RESULTS: Mapping[Reason, str] = {
    Reason.SYNCED: "ok",
    Reason.API_UNAVAILABLE: "retry",
    Reason.INVALID_SPEC: "error",
    Reason.CONFLICT: "conflict",
}
DELETED = "ok"

RECONCILES = Counter(
    "shorty_operator_reconciles_total",
    "ShortLink reconciliations, by handler (upsert, timer, delete) and result (ok, retry,"
    " error, conflict)",
    ["handler", "result"],
)
DURATION = Histogram(
    "shorty_operator_reconcile_duration_seconds",
    "Time spent reconciling a ShortLink, by handler",
    ["handler"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
READINESS = "readiness"  # the kopf index's id: handlers receive it under this name


def readiness(status: Mapping[str, Any], **_: Any) -> dict[str, bool]:
    """The kopf index: each ShortLink under ``"true"`` or ``"false"``, by its Ready
    condition."""
    condition = ready_condition(status) or {}
    return {"true" if condition.get("status") == "True" else "false": True}


class ShortLinksByReady(Collector):
    """``shorty_operator_shortlinks{ready}`` from the index once kopf hands it over
    (``watch``; before that, zeros)."""

    def __init__(self) -> None:
        self._index: Mapping[str, Sized] | None = None

    def watch(self, index: Mapping[str, Sized]) -> None:
        self._index = index

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "shorty_operator_shortlinks",
            "ShortLinks the operator watches, by their Ready condition (true, false)",
            labels=["ready"],
        )
        for ready in ("true", "false"):
            family.add_metric([ready], self._count(ready))
        yield family

    def _count(self, key: str) -> int:
        # Read in the metrics listener's thread while kopf updates the index in its
        # loop: a lookup and a len() each, no iteration over what may change.
        index = self._index
        try:
            return len(index[key]) if index is not None else 0
        except KeyError:  # none of them (kopf drops an emptied key)
            return 0


SHORTLINKS = ShortLinksByReady()
REGISTRY.register(SHORTLINKS)
