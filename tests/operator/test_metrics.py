"""The operator's metrics (shorty_operator/metrics.py), without a cluster: what each
reason counts as, and the index behind shorty_operator_shortlinks{ready}."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from shorty_operator.metrics import RESULTS, ShortLinksByReady, readiness
from shorty_operator.model import Reason, ready, status


def test_every_reason_counts_as_one_of_the_results_of_the_contract():
    assert set(RESULTS) == set(Reason)
    assert set(RESULTS.values()) == {"ok", "retry", "error", "conflict"}


def test_a_shortlink_is_indexed_by_its_ready_condition():
    synced = status(ready(Reason.SYNCED, "ok", 1))
    conflict = status(ready(Reason.CONFLICT, "taken", 1))
    assert readiness(synced) == {"true": True}
    assert readiness(conflict) == {"false": True}
    assert readiness({}) == {"false": True}  # no condition yet: not Ready


def test_the_gauge_counts_the_index_and_reads_zero_before_kopf_hands_it_over():
    collector = ShortLinksByReady()
    registry = CollectorRegistry()
    registry.register(collector)

    def count(ready: str) -> float | None:
        return registry.get_sample_value("shorty_operator_shortlinks", {"ready": ready})

    assert (count("true"), count("false")) == (0, 0)
    # kopf's index: each key's store holds one value per object under it.
    collector.watch({"true": [True, True, True], "false": [True]})
    assert (count("true"), count("false")) == (3, 1)
    collector.watch({"false": [True]})  # kopf drops a key none holds any more
    assert (count("true"), count("false")) == (0, 1)
