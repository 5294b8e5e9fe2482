"""The emulated API server itself (tests/operator/kube.py)."""

from tests.operator.kube import API, KEEP_REQUESTS, FakeKube


def test_the_emulator_keeps_a_bounded_history_and_records_every_call():
    """kmock scans its kept requests on every request: kept unbounded, a module of
    operator tests made it take 195 ms an answer after 4,200 requests (15 ms kept
    bounded) and over 30 s under load. Every call stays in ``Cluster.calls``."""
    with FakeKube() as kube:
        assert kube.cluster is not None
        before = len(kube.cluster.calls)
        for _ in range(KEEP_REQUESTS + 50):
            assert kube.request("GET", f"{API}/namespaces/ns-a/shortlinks")["items"] == []
        assert len(kube.cluster.calls) == before + KEEP_REQUESTS + 50
        assert len(list(kube.cluster)) == KEEP_REQUESTS
        assert kube.cluster.calls[-1] is list(kube.cluster)[-1]
