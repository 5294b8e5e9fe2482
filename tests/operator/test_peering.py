"""The operator with kopf's peering, as the Deployment runs it (issue #14, defect 7):
back to work within seconds of a crash, a pause that shows, a missing peering
object that says so, and the API timeout as an option. The real ``shorty-operator``
against the emulated Kubernetes API and the real Shorty API, as in test_operator.py."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from tests.faults import Proxy
from tests.helpers import wait_for
from tests.operator.helpers import (
    MANIFESTS,
    Operator,
    World,
    namespace,
    reason_is,
    shortlink,
    synced,
)
from tests.operator.kube import ready

PEERING = "shorty-operator"
PEERING_PATH = f"/apis/kopf.dev/v1/clusterkopfpeerings/{PEERING}"
# Back to work after a crash within this many seconds of the restart (issue #14: 10 s;
# it took 57 s while the killed operator's heartbeat looked alive).
RESTART_BUDGET = 10.0


def deployment() -> dict[str, Any]:
    (found,) = [
        doc
        for doc in yaml.safe_load_all((MANIFESTS / "operator" / "deployment.yaml").read_text())
        if doc["kind"] == "Deployment"
    ]
    return dict(found)


def pod_env(pod: str) -> dict[str, str]:
    """The variables the Deployment's container takes from its pod's name (the downward
    API), as they would be in the pod ``pod``; and its args, as they are."""
    (container,) = deployment()["spec"]["template"]["spec"]["containers"]
    return {
        entry["name"]: pod
        for entry in container.get("env", [])
        if entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
    }


def ensure_peering(world: World) -> None:
    if world.kube.request("GET", PEERING_PATH) is None:
        (peering,) = yaml.safe_load_all((MANIFESTS / "operator" / "peering.yaml").read_text())
        world.kube.request("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering)


def peers(world: World, **status: Any) -> None:
    """Merge ``status`` (peers by identity; None removes one) into the peering object."""
    world.kube.request(
        "PATCH", PEERING_PATH, {"status": status}, patch="application/merge-patch+json"
    )


def peering_operator(world: World, folder: Path, pod: str, *args: str) -> Operator:
    """The operator as the Deployment runs it (--peering shorty-operator, the pod's name
    from the downward API), in its own folder."""
    folder.mkdir(exist_ok=True)
    return Operator(
        world.kube, world.api_url, world.key, folder, *args, peering=PEERING, env=pod_env(pod)
    )


def health_shows(operator: Operator, state: str) -> dict[str, Any]:
    """Wait until /healthz shows the peering ``state`` (kopf keeps a probe 10 s)."""
    return wait_for(
        lambda: (shown := operator.health().get("peering", {})).get("state") == state and shown,
        30,
        f"/healthz to show peering {state}",
        every=0.5,
    )


def test_a_killed_operator_acts_again_within_seconds_of_its_restart(world, tmp_path):
    """SIGKILL leaves the operator's heartbeat in the peering object, alive for its 60 s
    lifetime. Restarted in the same pod (as Kubernetes restarts a killed container), the
    operator knows that heartbeat for its own, by the pod's name the Deployment gives it,
    and reconciles at once instead of pausing behind its dead self."""
    assert pod_env("p"), "the Deployment gives the operator its pod's name"
    ensure_peering(world)
    pod = "shorty-operator-7c9d5b8f4-x2x9q"
    assert world.operator.stop() == 0  # the standalone one of the other tests
    world.operator = operator = peering_operator(world, tmp_path / "first", pod)
    try:
        ns = namespace()
        world.kube.apply(shortlink("before", ns))
        synced(world, "before", ns)
        status = (world.kube.request("GET", PEERING_PATH) or {}).get("status") or {}
        assert pod in status, status  # its heartbeat, under the pod's name

        operator.kill()
        started = time.monotonic()
        world.operator = operator = peering_operator(world, tmp_path / "second", pod)
        world.kube.apply(shortlink("after", ns))
        synced(world, "after", ns)
        took = time.monotonic() - started
        print(f"a ShortLink reconciled {took:.1f} s after the restart")
        assert took < RESTART_BUDGET, f"{took:.1f} s after the restart"
        assert operator.paused() == 0
        assert health_shows(operator, "active")["name"] == PEERING
    finally:
        world.restart_operator()


def test_a_paused_operator_says_so_and_acts_again_once_let(world, tmp_path):
    """Another operator with a higher priority in the peering (a developer's, say)
    pauses this one: /healthz and shorty_operator_paused show it; a ShortLink made
    meanwhile waits, and is reconciled once the other is gone."""
    ensure_peering(world)
    assert world.operator.stop() == 0
    world.operator = operator = peering_operator(world, tmp_path / "op", "shorty-operator-a-1")
    try:
        wait_for(lambda: operator.paused() == 0, 30, "the operator to act")
        now = datetime.now(UTC).isoformat()
        peers(world, **{"dev@laptop": {"priority": 100, "lifetime": 60, "lastseen": now}})
        wait_for(lambda: operator.paused() == 1, 30, "shorty_operator_paused to be 1")
        shown = health_shows(operator, "paused")
        assert shown["paused"] is True
        assert "dev@laptop" in shown["why"]

        ns = namespace()
        world.kube.apply(shortlink("held", ns))
        peers(world, **{"dev@laptop": None})
        wait_for(lambda: operator.paused() == 0, 30, "the operator to act again")
        synced(world, "held", ns)
        health_shows(operator, "active")
    finally:
        world.restart_operator()


def test_a_missing_peering_object_is_a_warning_and_shows_in_health(world, tmp_path):
    """--peering naming an object that does not exist: kopf waits for it for good, and
    said so only at DEBUG. (Beside the standalone operator of the other tests: this one
    never acts.)"""
    folder = tmp_path / "op"
    folder.mkdir()
    operator = Operator(world.kube, world.api_url, world.key, folder, peering="nowhere")
    try:

        def warned() -> dict[str, Any] | None:
            for line in operator.log.read_text().splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if "'nowhere' does not exist" in str(record.get("message")):
                    return record
            return None

        record = wait_for(warned, 30, "a warning about the missing peering object")
        assert record["log.level"] == "warning"
        assert "--standalone" in record["message"]
        assert operator.paused() == 1
        shown = health_shows(operator, "missing")
        assert shown["why"] == "the peering object 'nowhere' does not exist"
        assert '"Keep-alive in' not in operator.log.read_text()  # kopf's DEBUG stays out
    finally:
        assert operator.stop() == 0


def test_the_api_timeout_is_an_option_and_is_honoured(world, tmp_path):
    """With the API hung (a paused proxy in front of the real one), a ShortLink shows
    ApiUnavailable after --api-timeout, not after the 10 s default."""
    with Proxy(world.api.port) as proxy:
        assert world.operator.stop() == 0
        world.operator = Operator(
            world.kube,
            f"http://127.0.0.1:{proxy.port}",
            world.key,
            tmp_path,
            "--api-timeout",
            "1",
        )
        try:
            proxy.pause()
            ns = namespace()
            started = time.monotonic()
            world.kube.apply(shortlink("hung", ns))
            obj = reason_is(world, "hung", ns, "ApiUnavailable")
            took = time.monotonic() - started
            print(f"ApiUnavailable {took:.1f} s after the ShortLink was made (--api-timeout 1)")
            assert "did not answer within 1 s (--api-timeout)" in ready(obj)["message"]
            assert took < 6, f"{took:.1f} s"
            proxy.resume()
            synced(world, "hung", ns)
        finally:
            world.restart_operator()


def test_the_calls_in_flight_are_bounded_by_api_concurrency(world, tmp_path):
    """--api-concurrency 2 with the API hung: two calls are held at the API, every other
    ShortLink's waits, however many there are; once the API answers, all are Ready.
    (Without the bound, each ShortLink had a call of its own in flight at once.)"""
    with Proxy(world.api.port) as proxy:
        proxy.pause()
        assert world.operator.stop() == 0
        world.operator = Operator(
            world.kube,
            f"http://127.0.0.1:{proxy.port}",
            world.key,
            tmp_path,
            "--api-concurrency",
            "2",
            "--api-timeout",
            "60",
        )
        try:
            ns = namespace()
            names = [f"queued-{i}" for i in range(6)]
            for name in names:
                world.kube.apply(shortlink(name, ns))
            wait_for(lambda: proxy.connections >= 2, 30, "two calls held at the API")
            most, until = 0, time.monotonic() + 3  # a bound holds: watch it for a while
            while time.monotonic() < until:
                most = max(most, proxy.connections)
                time.sleep(0.05)
            assert most == 2, f"{most} calls in flight"
            proxy.resume()
            for name in names:
                synced(world, name, ns)
        finally:
            proxy.resume()
            world.restart_operator()
