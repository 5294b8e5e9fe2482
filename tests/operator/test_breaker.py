"""The operator's circuit breaker around its calls to the API (issue #14), end to end:
the real ``shorty-operator`` against the emulated Kubernetes API and the real Shorty
API, reached through a loopback proxy (tests/faults.py) that counts every
connection the operator opens and can slow every byte.

- The API down (its process stopped): the breaker bounds the operator's attempts,
  the ShortLinks say the API is unavailable, ``/healthz`` and the metrics show the
  breaker open; once the API is back, everything reconciles within the cool-down
  and a few seconds, nothing lost or made twice.
- The API slow (300 ms on each leg, the degradation matrix's "300 ms slow" row):
  every call is cut off at ``--api-timeout``, the timeouts open the breaker, and
  the operator recovers when the slowness ends.

Each test runs an operator of its own, watching only its namespace (so every call
through the proxy is about that test's ShortLinks); the module's world needs its
default operator for nothing else.
"""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path
from typing import Any

from shorty.resilience.breaker import Breaker
from shorty_operator.client import ShortyClient, Unavailable
from tests.e2e.processes import Service, sample, scrape
from tests.faults import Proxy
from tests.helpers import query, wait_for
from tests.operator.helpers import Operator, World, namespace, reason_is, shortlink, synced
from tests.operator.kube import ready

COOLDOWN = 2.0  # --breaker-cooldown in these tests
CONCURRENCY = 2  # --api-concurrency where calls are counted
WINDOW = 5.0  # seconds of an outage over which the operator's attempts are counted
# Back to Ready within the cool-down plus this (the timer's 1 s interval, a probe, and
# room for a loaded 2-core machine).
RECOVERY_MARGIN = 8.0


def operator_through(world: World, proxy: Proxy, folder: Path, ns: str, *args: str) -> Operator:
    """The world's operator replaced by one that calls the API through ``proxy`` and
    watches only ``ns``, with ``args``."""
    assert world.operator.stop() == 0
    world.operator = Operator(
        world.kube,
        f"http://127.0.0.1:{proxy.port}",
        world.key,
        folder,
        "--namespace",
        ns,
        "--breaker-cooldown",
        str(COOLDOWN),
        *args,
    )
    return world.operator


def links_of(world: World, ns: str) -> dict[str, str]:
    """The links Shorty holds for ShortLinks of ``ns``: external_ref -> code."""
    rows = query(
        world.database_url,
        "SELECT external_ref, code FROM urls WHERE external_ref LIKE $1",
        f"k8s:{ns}/%",
    )
    return {row["external_ref"]: row["code"] for row in rows}


def breaker_state(operator: Operator) -> float:
    return operator.sample("shorty_breaker_state", dependency="api")


def opened(operator: Operator) -> float:
    return operator.sample("shorty_breaker_transitions_total", dependency="api", to="open")


def message_of(world: World, name: str, ns: str) -> str:
    return str(ready(world.kube.get(name, ns)).get("message", ""))


def test_with_the_api_down_the_breaker_bounds_the_calls_and_nothing_is_lost(world, tmp_path):
    threshold = 3
    ns = namespace()
    port = world.api.port
    with Proxy(port) as proxy:
        operator = operator_through(
            world,
            proxy,
            tmp_path,
            ns,
            "--breaker-threshold",
            str(threshold),
            "--api-concurrency",
            str(CONCURRENCY),
        )
        names = [f"steady-{i}" for i in range(4)]
        for name in names:
            world.kube.apply(shortlink(name, ns))
        codes = {name: synced(world, name, ns)["status"]["code"] for name in names}

        world.api.stop()
        try:
            before, started = proxy.accepted, time.monotonic()
            # During the outage: a new ShortLink, and one deleted (the finalizer waits).
            world.kube.apply(shortlink("newcomer", ns))
            world.kube.delete("steady-0", ns)
            time.sleep(WINDOW)
            attempts, took = proxy.accepted - before, time.monotonic() - started
            # Without the breaker every ShortLink's timer (each second) and the two
            # handlers' retries (0.5 s doubling) call, and each fails at once: 50
            # connections in 5.1 s were measured with the breaker taken out. With it:
            # the threshold, the calls already in flight when it opened, a probe per
            # cool-down (and one more for the edges of the window); each call is at
            # most two connections (aiohttp tries a dropped idempotent request again).
            calls = threshold + (CONCURRENCY - 1) + math.ceil(took / COOLDOWN) + 1
            bound = 2 * calls
            print(
                f"API down: {attempts} connections in {took:.1f} s by 5 ShortLinks "
                f"(threshold {threshold}, cool-down {COOLDOWN:g} s: at most {bound})"
            )
            assert attempts <= bound, f"{attempts} connections in {took:.1f} s"
            wait_for(lambda: breaker_state(operator) == 1, 10, "shorty_breaker_state 1 (open)")
            assert opened(operator) >= 1
            # kopf keeps a /healthz body up to 10 s.
            wait_for(
                lambda: operator.health().get("api", {}).get("breaker") == "open",
                30,
                "/healthz to show the API's breaker open",
                every=0.5,
            )
            for name in ("steady-1", "newcomer"):
                reason_is(world, name, ns, "ApiUnavailable")
            wait_for(
                lambda: "circuit breaker is open" in message_of(world, "steady-1", ns),
                10,
                "a condition naming the open breaker",
            )
            shown = message_of(world, "steady-1", ns)
            assert "cannot be reached" in shown  # what the calls met, kept while refused
            assert world.kube.get("steady-0", ns)["metadata"]["deletionTimestamp"]
        finally:
            world.api = Service("api", world.env, world.folder / "api.log", port=port)
        back = time.monotonic()
        for name in [*names[1:], "newcomer"]:
            synced(world, name, ns)
        recovered = time.monotonic() - back
        # The deletion waits for its handler's next retry: kopf's backoff (--backoff,
        # doubling), which the breaker only ever lengthens to the end of a cool-down.
        wait_for(lambda: world.kube.get("steady-0", ns) is None, 30, "the deletion to finish")
        deleted = time.monotonic() - back
        print(
            f"every ShortLink Ready {recovered:.1f} s after the API was back, the deletion "
            f"done after {deleted:.1f} s"
        )
        assert recovered < COOLDOWN + RECOVERY_MARGIN, f"{recovered:.1f} s"
        assert breaker_state(operator) == 0

    links = links_of(world, ns)
    objects: dict[str, dict[str, Any]] = {
        name: world.kube.get(name, ns) for name in [*names[1:], "newcomer"]
    }
    refs = {
        f"k8s:{ns}/{name}/{obj['metadata']['uid']}": obj["status"]["code"]
        for name, obj in objects.items()
    }
    assert links == refs  # one link each, none for the deleted one, none twice
    assert {name: codes[name] for name in names[1:]} == {
        name: objects[name]["status"]["code"] for name in names[1:]
    }
    log = operator.log.read_text()
    assert "api breaker open" in log  # transitions are logged
    assert "api breaker closed" in log


def test_a_slow_api_is_cut_off_at_the_timeout_and_opens_the_breaker(world, tmp_path):
    """300 ms on each leg of every call (the API behind a slowed proxy), against an
    --api-timeout of 0.5 s: no reconciliation waits past the timeout, the timeouts open
    the breaker, and once the API is fast again every ShortLink is Ready."""
    ns = namespace()
    with Proxy(world.api.port) as proxy:
        operator = operator_through(
            world, proxy, tmp_path, ns, "--api-timeout", "0.5", "--breaker-threshold", "2"
        )
        names = [f"slowed-{i}" for i in range(3)]
        for name in names:
            world.kube.apply(shortlink(name, ns))
        for name in names:
            synced(world, name, ns)
        count_before, within_before = timer_checks(operator)
        opens_before = opened(operator)

        proxy.slow(0.3)
        started = time.monotonic()
        wait_for(lambda: opened(operator) > opens_before, 20, "the breaker to open")
        took = time.monotonic() - started
        obj = reason_is(world, "slowed-0", ns, "ApiUnavailable")
        assert "did not answer within 0.5 s (--api-timeout)" in ready(obj)["message"]
        time.sleep(COOLDOWN + 1)  # a probe meets the slowness too
        count, within = timer_checks(operator)
        checks, within = count - count_before, within - within_before
        print(
            f"API 300 ms slow each way: breaker open {took:.1f} s after; {checks:.0f} checks, "
            f"{within:.0f} of them within 1 s (--api-timeout 0.5)"
        )
        assert checks >= 2
        assert within == checks  # none waited past the timeout (and its bucket)

        proxy.slow(0)
        back = time.monotonic()
        for name in names:
            synced(world, name, ns)
        recovered = time.monotonic() - back
        print(f"every ShortLink Ready {recovered:.1f} s after the API was fast again")
        assert recovered < COOLDOWN + RECOVERY_MARGIN, f"{recovered:.1f} s"
        wait_for(lambda: breaker_state(operator) == 0, 10, "the breaker to close")


def timer_checks(operator: Operator) -> tuple[float, float]:
    """The timer's reconciles so far, and those of them done within 1 s: from one
    scrape (from two, a check ending in between was counted in one and not the other)."""
    samples = scrape(operator.metrics_port)
    durations = "shorty_operator_reconcile_duration_seconds"
    count = sample(samples, f"{durations}_count", handler="timer") or 0.0
    within = sample(samples, f"{durations}_bucket", handler="timer", le="1.0") or 0.0
    return count, within


def test_only_failures_to_answer_open_the_breaker_and_an_open_one_calls_nothing(world):
    """ShortyClient against the real API: 4xx answers (a refused key, a missing link)
    are the API working and never open the breaker; calls that reach nothing do; then
    calls are refused without a connection, saying how long for."""

    async def scenario(proxy: Proxy) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        through = f"http://127.0.0.1:{proxy.port}"
        wrong_key = ShortyClient(through, "shk_" + "1" * 40, breaker=Breaker("api", **options))
        good = ShortyClient(through, world.key, breaker=Breaker("api", **options))
        try:
            for _ in range(3):
                try:
                    await wrong_key.get("k8s:nowhere/none/0")
                except Unavailable as exc:
                    seen.setdefault("refused key", []).append(exc.status)
                seen.setdefault("missing", []).append(await good.get("k8s:nowhere/none/0"))
            seen["after 4xx"] = (wrong_key.breaker.state, good.breaker.state)  # type: ignore[union-attr]
            proxy.cut()
            for _ in range(2):
                try:
                    await good.get("k8s:nowhere/none/0")
                except Unavailable as exc:
                    seen.setdefault("cut", []).append(exc.message)
            seen["after cut"] = good.breaker.state  # type: ignore[union-attr]
            before = proxy.accepted
            try:
                await good.get("k8s:nowhere/none/0")
            except Unavailable as exc:
                seen["refused"] = exc
            seen["connections while open"] = proxy.accepted - before
        finally:
            await wrong_key.close()
            await good.close()
        return seen

    options: dict[str, Any] = {"threshold": 2, "cooldown": 30.0}
    with Proxy(world.api.port) as proxy:
        seen = asyncio.run(scenario(proxy))
    assert seen["refused key"] == [401, 401, 401]
    assert seen["missing"] == [None, None, None]
    assert seen["after 4xx"] == ("closed", "closed")
    assert len(seen["cut"]) == 2
    assert seen["after cut"] == "open"
    assert seen["connections while open"] == 0
    refused: Unavailable = seen["refused"]
    assert 29 < refused.retry_in <= 30
    assert refused.message.startswith(seen["cut"][-1])  # what the last call met
    assert "circuit breaker is open" in refused.message


def test_calls_waiting_for_a_slot_are_refused_once_the_breaker_opens(world):
    """With one call in flight at a time, five at once at an API that drops every
    connection: the first fails and opens the breaker (threshold 1), and the four that
    waited for its slot are refused without a connection. (Asking the breaker before
    waiting let all five through: ten connections.)"""

    async def scenario(proxy: Proxy) -> list[BaseException | Any]:
        breaker = Breaker("api", threshold=1, cooldown=30.0)
        client = ShortyClient(
            f"http://127.0.0.1:{proxy.port}", world.key, connections=1, breaker=breaker
        )
        try:
            calls = [client.get(f"k8s:queue/q{i}/0") for i in range(5)]
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await client.close()

    with Proxy(world.api.port) as proxy:
        proxy.cut()
        outcomes = asyncio.run(scenario(proxy))
        connections = proxy.accepted
    print(f"five calls, one slot, the API dropping connections: {connections} connections")
    assert all(isinstance(outcome, Unavailable) for outcome in outcomes)
    refused = [o for o in outcomes if "circuit breaker is open" in str(o)]
    assert len(refused) == 4
    assert connections <= 2  # one call (aiohttp tries a dropped one twice)
