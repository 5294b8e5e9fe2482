"""The operator end to end, with no cluster: a real ``shorty-operator`` process (kopf)
against an emulated Kubernetes API (kmock, tests/operator/kube.py), and the real
Shorty API, redirect service and worker (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, NamedTuple

import yaml

from shorty_operator.client import ApiError, Conflict, Refused, ShortyClient, Unavailable
from tests.e2e.processes import Service
from tests.helpers import free_port, query, scalar, user_with_key, wait_for
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


def ref_of(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"k8s:{meta['namespace']}/{meta['name']}/{meta['uid']}"


def by_ref(world: World, obj: dict[str, Any]) -> tuple[int, Any]:
    return world.call("GET", "/api/v1/refs?ref=" + ref_of(obj).replace("/", "%2F"))


def events_for(world: World, ns: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        event
        for event in world.kube.events(ns)
        if event.get("involvedObject", {}).get("name") == name and event.get("reason") == reason
    ]


def test_create_makes_the_link_and_the_redirect_answers(world):
    ns = namespace()
    world.kube.apply(shortlink("docs", ns, code="op-docs", tags=["Docs"], redirectType=307))
    obj = synced(world, "docs", ns, code="op-docs")
    assert obj["status"]["shortUrl"] == "https://sho.rt/op-docs"
    assert obj["status"]["clicks"] == 0
    condition = ready(obj)
    assert condition["status"] == "True"
    assert condition["message"] == "https://sho.rt/op-docs redirects to the target."
    assert "shorty.dev/link" in obj["metadata"]["finalizers"]

    status, link = by_ref(world, obj)
    assert status == 200
    assert (link["code"], link["target"], link["tags"]) == (
        "op-docs",
        "https://example.com/docs",
        ["docs"],
    )
    assert link["redirect_type"] == 307
    assert world.follow("op-docs") == (307, "https://example.com/docs")


def test_a_generated_code_is_shown_and_kept(world):
    ns = namespace()
    world.kube.apply(shortlink("plain", ns))
    obj = synced(world, "plain", ns)
    code = obj["status"]["code"]
    assert obj["status"]["shortUrl"] == f"https://sho.rt/{code}"
    assert world.follow(code) == (302, "https://example.com/docs")
    world.kube.edit_spec("plain", {"disabled": True}, ns)
    assert synced(world, "plain", ns)["status"]["code"] == code
    assert wait_for(lambda: world.follow(code)[0] == 410, 10, "the disabled link to stop")


def test_an_update_of_the_target_is_followed_by_the_redirect(world):
    ns = namespace()
    world.kube.apply(shortlink("moving", ns, code="op-moving"))
    synced(world, "moving", ns)
    assert world.follow("op-moving") == (302, "https://example.com/docs")
    world.kube.edit_spec("moving", {"target": "https://example.com/new-home"}, ns)
    obj = synced(world, "moving", ns)
    assert obj["metadata"]["generation"] == 2
    wait_for(
        lambda: world.follow("op-moving") == (302, "https://example.com/new-home"),
        10,
        "the redirect to follow the new target",
    )


def test_delete_removes_the_link_and_then_the_object(world):
    ns = namespace()
    world.kube.apply(shortlink("gone", ns, code="op-gone"))
    obj = synced(world, "gone", ns)
    world.kube.delete("gone", ns)
    wait_for(lambda: world.kube.get("gone", ns) is None, 30, "the finalizer to let go")
    assert by_ref(world, obj)[0] == 404
    assert world.follow("op-gone")[0] == 404


def test_a_link_deleted_or_edited_behind_the_operators_back_is_restored(world):
    ns = namespace()
    world.kube.apply(shortlink("kept", ns, code="op-kept"))
    obj = synced(world, "kept", ns)
    assert world.call("DELETE", "/api/v1/urls/op-kept")[0] == 204
    wait_for(lambda: by_ref(world, obj)[0] == 200, 30, "the timer to put the link back")
    wait_for(lambda: world.follow("op-kept")[0] == 302, 10, "the restored link to redirect")
    wait_for(lambda: events_for(world, ns, "kept", "Restored"), 10, "a Restored event")

    changed = world.call("PATCH", "/api/v1/urls/op-kept", {"target": "https://evil.example/"})
    assert changed[0] == 200
    wait_for(
        lambda: by_ref(world, obj)[1]["target"] == "https://example.com/docs",
        30,
        "the timer to undo the edit",
    )
    wait_for(
        lambda: any(
            "had drifted (target)" in event["message"]
            for event in events_for(world, ns, "kept", "Restored")
        ),
        10,
        "an event naming the drifted field",
    )


def test_a_generated_code_is_kept_when_the_link_is_made_again(world):
    ns = namespace()
    world.kube.apply(shortlink("drawn", ns))
    obj = synced(world, "drawn", ns)
    code = obj["status"]["code"]
    assert world.call("DELETE", f"/api/v1/urls/{code}")[0] == 204
    wait_for(lambda: by_ref(world, obj)[0] == 200, 30, "the timer to put the link back")
    assert by_ref(world, obj)[1]["code"] == code  # the short URL handed out still works
    assert synced(world, "drawn", ns)["status"]["code"] == code
    wait_for(lambda: world.follow(code)[0] == 302, 10, "the restored link to redirect")


def test_two_shortlinks_with_one_code_conflict_until_the_first_is_gone(world):
    ns = namespace()
    world.kube.apply(shortlink("first", ns, code="op-shared"))
    synced(world, "first", ns)
    world.kube.apply(shortlink("second", ns, code="op-shared", target="https://example.com/2"))
    second = reason_is(world, "second", ns, "Conflict")
    assert ready(second)["status"] == "False"
    assert "already taken" in ready(second)["message"]
    assert "code" not in second["status"]
    assert world.operator.process.poll() is None  # no crash loop
    wait_for(lambda: events_for(world, ns, "second", "Conflict"), 10, "a Conflict event")
    # Retried (every second here), with one warning event, not one per retry.
    tried = "failed temporarily: the code is taken"
    retried = world.operator.log.read_text().count(tried)
    wait_for(
        lambda: world.operator.log.read_text().count(tried) >= retried + 2,
        10,
        "two more tries",
    )
    warnings = events_for(world, ns, "second", "Conflict")
    assert [event["type"] for event in warnings] == ["Warning"]

    world.kube.delete("first", ns)
    synced(world, "second", ns, code="op-shared")
    assert world.follow("op-shared") == (302, "https://example.com/2")


def counter(world: World, handler: str, result: str) -> float:
    """A value of shorty_operator_reconciles_total from the operator's /metrics."""
    line = f'shorty_operator_reconciles_total{{handler="{handler}",result="{result}"}} '
    found = [row for row in world.operator.metrics().splitlines() if row.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


def test_a_spec_shorty_refuses_is_invalid_and_left_alone(world):
    ns = namespace()
    world.kube.apply(shortlink("reserved", ns, code="api"))  # the CRD allows it, Shorty not
    # Refused by the API itself (a target on Shorty's own host), not by the operator's check:
    world.kube.apply(shortlink("loop", ns, target="https://sho.rt/elsewhere"))
    obj = reason_is(world, "reserved", ns, "InvalidSpec")
    assert "reserved" in ready(obj)["message"]
    loop = reason_is(world, "loop", ns, "InvalidSpec")
    assert "422" in ready(loop)["message"]
    for name in ("reserved", "loop"):
        wait_for(lambda n=name: events_for(world, ns, n, "InvalidSpec"), 10, "the event")
    wait_for(
        lambda: world.operator.sample("shorty_operator_shortlinks", ready="false") >= 2,
        10,
        "the refused ShortLinks to count as not Ready",
    )
    # Left alone: while the timer checks the other links, it does not try these again.
    refused_by_timer = counter(world, "timer", "error")
    world.kube.apply(shortlink("busy", ns))
    synced(world, "busy", ns)
    checks = counter(world, "timer", "ok")
    wait_for(lambda: counter(world, "timer", "ok") >= checks + 3, 20, "timer runs")
    assert counter(world, "timer", "error") == refused_by_timer
    assert len(events_for(world, ns, "loop", "InvalidSpec")) == 1
    world.kube.delete("reserved", ns)  # never created: deleting is still clean
    wait_for(lambda: world.kube.get("reserved", ns) is None, 30, "the object to go")


def test_timer_ticks_stay_out_of_info_and_handlers_go_by_their_ids(world):
    ns = namespace()
    world.kube.apply(shortlink("quiet", ns))
    world.kube.apply(shortlink("refused", ns, code="api"))  # skipped by every tick
    synced(world, "quiet", ns)
    reason_is(world, "refused", ns, "InvalidSpec")
    checks = counter(world, "timer", "ok")
    wait_for(lambda: counter(world, "timer", "ok") >= checks + 3, 20, "timer runs")
    log = world.operator.log.read_text()
    assert "Timer 'resync' succeeded" not in log
    assert "build_registry" not in log  # kopf names each handler by its id
    assert "Handler 'upsert' succeeded." in log  # a real change still shows at INFO
    assert not events_for(world, ns, "quiet", "Logging")  # nor is a tick an event
    for name in ("quiet", "refused"):  # no more ticks for the tests after this one
        world.kube.delete(name, ns)
        wait_for(lambda n=name: world.kube.get(n, ns) is None, 30, "the object to go")


OLD_PROGRESS = "shorty.dev/build_registry._locals_.upsert"  # the closure's name, before ids


def test_an_upgrade_goes_on_with_the_progress_the_old_handler_names_hold(world):
    """A ShortLink retrying under an operator of before, whose handlers kopf named after
    closures (``build_registry.<locals>.upsert``): the operator of now continues that
    handling (same start, retries counted on), under its own name, and leaves nothing
    of the old one behind."""
    ns = namespace()
    taken = {"target": "https://example.com/first", "alias": "op-upgraded"}
    assert world.call("POST", "/api/v1/shorten", taken)[0] == 201
    started = "2026-12-05T08:09:59.881437+00:00"
    old = {  # as the operator of before left a ShortLink whose code was taken
        "started": started,
        "delayed": "2026-12-05T08:10:03.018224+00:00",
        "purpose": "create",
        "retries": 3,
        "success": False,
        "failure": False,
        "message": "the code is taken",
    }
    obj = shortlink("upgraded", ns, code="op-upgraded")
    obj["metadata"]["annotations"] = {
        OLD_PROGRESS: json.dumps(old, separators=(",", ":")),
        "shorty.dev/kopf-managed": "yes",
        "shorty.dev/touch-dummy": "2026-12-05T08:10:03.018820+00:00",
    }
    world.kube.apply(obj)

    def progress() -> dict[str, Any] | None:
        found = world.kube.get("upgraded", ns) or {}
        annotations = found.get("metadata", {}).get("annotations") or {}
        record = annotations.get("shorty.dev/upsert")
        return {**json.loads(record), "old": annotations.get(OLD_PROGRESS)} if record else None

    record = wait_for(progress, 30, "the progress under the handler's id")
    assert record["started"] == started  # the same handling, not a new one
    assert record["retries"] >= 4  # counted on from the old record's 3
    assert record["old"] is None
    assert ready(reason_is(world, "upgraded", ns, "Conflict"))["status"] == "False"

    assert world.call("DELETE", "/api/v1/urls/op-upgraded")[0] == 204
    synced(world, "upgraded", ns, code="op-upgraded")  # perhaps by the timer, first

    def handled() -> set[str] | None:
        annotations = set((world.kube.get("upgraded", ns) or {})["metadata"].get("annotations"))
        return annotations if "shorty.dev/last-handled-configuration" in annotations else None

    left = wait_for(handled, 30, "the handler to finish")  # kopf purges its progress then
    assert not left & {OLD_PROGRESS, "shorty.dev/upsert"}, left
    assert world.follow("op-upgraded") == (302, "https://example.com/docs")
    world.kube.delete("upgraded", ns)
    wait_for(lambda: world.kube.get("upgraded", ns) is None, 30, "the object to go")
    assert world.follow("op-upgraded")[0] == 404


def test_a_key_shorty_refuses_shows_unavailable_until_it_is_fixed(world):
    ns = namespace()
    wrong = "shk_" + "0" * 40
    world.restart_operator(key=wrong)
    try:
        world.kube.apply(shortlink("keyed", ns, code="op-keyed"))
        obj = reason_is(world, "keyed", ns, "ApiUnavailable")
        assert "refused the operator's API key (401" in ready(obj)["message"]
        events = json.dumps(events_for(world, ns, "keyed", "ApiUnavailable"))
        assert wrong not in json.dumps(obj) + events + world.operator.log.read_text()
    finally:
        world.restart_operator()
    synced(world, "keyed", ns, code="op-keyed")


def test_clicks_reach_the_status(world):
    ns = namespace()
    world.kube.apply(shortlink("counted", ns, code="op-counted"))
    synced(world, "counted", ns)
    for _ in range(3):
        assert world.follow("op-counted")[0] == 302
    synced(world, "counted", ns, clicks=3)


def test_a_restart_midway_duplicates_nothing(world):
    ns = namespace()
    world.kube.apply(shortlink("one", ns, code="op-one"))
    world.kube.apply(shortlink("two", ns))  # a generated code must survive the restart
    synced(world, "one", ns)
    two = synced(world, "two", ns)
    world.operator.kill()
    # While it is down: a new ShortLink and an edit.
    world.kube.apply(shortlink("three", ns))
    world.kube.edit_spec("one", {"target": "https://example.com/one"}, ns)
    world.restart_operator(kill=True)
    synced(world, "three", ns)
    synced(world, "one", ns)
    assert synced(world, "two", ns)["status"]["code"] == two["status"]["code"]
    held = scalar(
        world.database_url, "SELECT count(*) FROM urls WHERE external_ref LIKE $1", f"k8s:{ns}/%"
    )
    assert held == 3
    assert world.follow("op-one") == (302, "https://example.com/one")


def test_namespace_limits_what_the_operator_watches_and_needs(world):
    """With exact --namespace names, the operator sees only those namespaces, and
    needs no cluster-wide right: a Role there with the ClusterRole's first three
    rules (ShortLinks, their status, events) allows every call it makes."""
    watched, other = namespace(), namespace()
    assert world.operator.stop() == 0
    assert world.kube.cluster is not None
    since = len(world.kube.cluster.calls)
    world.operator = Operator(
        world.kube, world.api_url, world.key, world.folder, "--namespace", watched
    )
    try:
        world.kube.apply(shortlink("mine", watched))
        world.kube.apply(shortlink("theirs", other))
        world.kube.apply(shortlink("refused", watched, code="api"))  # an event
        synced(world, "mine", watched)
        world.kube.edit_spec("mine", {"target": "https://example.com/again"}, watched)
        synced(world, "mine", watched)  # by now, a watch of every namespace would have seen both
        assert world.kube.get("theirs", other).get("status") is None
        wait_for(lambda: events_for(world, ns=watched, name="refused", reason="InvalidSpec"),
                 10, "the event")  # fmt: skip
        world.kube.delete("mine", watched)
        wait_for(lambda: world.kube.get("mine", watched) is None, 30, "the object to go")
        calls = operator_calls(world, since)
    finally:
        world.restart_operator()
    synced(world, "theirs", other)

    role = cluster_role()["rules"][:3]
    assert {call.namespace for call in calls} == {watched}  # not one cluster-wide call
    refused = [call for call in sorted(calls) if not any(matches(r, *call[:4]) for r in role)]
    assert not refused, f"calls a namespaced Role would not allow: {refused}"


def test_api_down_shows_unavailable_then_recovers(world):
    ns = namespace()
    port = world.api.port
    world.api.stop()
    try:
        world.kube.apply(shortlink("patient", ns, code="op-patient"))
        obj = reason_is(world, "patient", ns, "ApiUnavailable")
        assert "cannot be reached" in ready(obj)["message"]
        world.kube.apply(shortlink("leaving", ns))
        reason_is(world, "leaving", ns, "ApiUnavailable")
    finally:
        world.api = Service("api", world.env, world.folder / "api.log", port=port)
    synced(world, "patient", ns, code="op-patient")
    leaving = synced(world, "leaving", ns)

    # A deletion while the API is down waits (the finalizer stays) and ends after it.
    world.api.stop()
    try:
        world.kube.delete("leaving", ns)
        obj = wait_for(
            lambda: (
                (found := world.kube.get("leaving", ns))
                and "Deleting the link" in ready(found).get("message", "")
                and found
            ),
            30,
            "the deletion to show ApiUnavailable",
        )
        assert ready(obj)["reason"] == "ApiUnavailable"
        assert obj["metadata"]["deletionTimestamp"]
    finally:
        world.api = Service("api", world.env, world.folder / "api.log", port=port)
    wait_for(lambda: world.kube.get("leaving", ns) is None, 30, "the deletion to finish")
    assert by_ref(world, leaving)[0] == 404


def test_the_client_reads_the_apis_answers_as_they_are_meant(world):
    """ShortyClient against the real API: only the API's own "no such link" is a
    missing link; a wrong URL, a refused key, a refused body each say so."""
    capped_id, capped_key = user_with_key(
        world.database_url, "capped@example.com", scopes=("urls:read", "urls:write")
    )
    query(world.database_url, "UPDATE users SET max_links = 0 WHERE id = $1", capped_id)

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        good = ShortyClient(world.api_url, world.key)
        wrong_path = ShortyClient(world.api_url + "/nothing-here", world.key)
        wrong_key = ShortyClient(world.api_url, "shk_" + "1" * 40)
        unreachable = ShortyClient(f"http://user:pw@127.0.0.1:{free_port()}", world.key)
        capped = ShortyClient(world.api_url, capped_key)
        try:
            seen["missing"] = await good.get("k8s:nowhere/none/0")
            seen["deleted nothing"] = await good.delete("k8s:nowhere/none/0")
            for name, call in {
                "wrong path": wrong_path.delete("k8s:nowhere/none/0"),
                "wrong key": wrong_key.get("k8s:nowhere/none/0"),
                "bad body": good.put("k8s:x/y/1", {"target": "ftp://x.example/"}),
                "unreachable": unreachable.get("k8s:x/y/1"),
                "over quota": capped.put("k8s:x/y/2", {"target": "https://x.example/"}),
            }.items():
                try:
                    await call
                except ApiError as exc:
                    seen[name] = exc
        finally:
            for client in (good, wrong_path, wrong_key, unreachable, capped):
                await client.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["missing"] is None
    assert seen["deleted nothing"] is False
    assert isinstance(seen["wrong path"], Unavailable)
    assert "check --api-url" in seen["wrong path"].message
    assert isinstance(seen["wrong key"], Unavailable)
    assert seen["wrong key"].status == 401
    assert isinstance(seen["bad body"], Refused)
    assert seen["bad body"].kind == "invalid-target"
    assert isinstance(seen["over quota"], Conflict)  # retried: the quota may free up
    assert seen["over quota"].kind == "quota-exceeded"
    assert isinstance(seen["unreachable"], Unavailable)
    assert "user" not in seen["unreachable"].message
    assert "pw@" not in seen["unreachable"].message


def test_metrics_count_reconciles_by_result(world):
    ns = namespace()
    world.kube.apply(shortlink("measured", ns))
    synced(world, "measured", ns)
    text = world.operator.metrics()
    assert 'shorty_operator_reconciles_total{handler="upsert",result="ok"}' in text
    assert "shorty_operator_reconcile_duration_seconds_bucket" in text


VERBS = {"LIST": "list", "WATCH": "watch", "FETCH": "get", "CREATE": "create", "DELETE": "delete"}


def matches(rule: dict[str, Any], group: str, resource: str, verb: str, name: str) -> bool:
    return (
        group in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
    )


class Call(NamedTuple):
    group: str
    resource: str  # with its subresource: shortlinks/status
    verb: str
    name: str
    namespace: str


def operator_calls(world: World, since: int = 0) -> set[Call]:
    """The API calls kopf made (by its User-Agent) from request number ``since`` on, as
    RBAC sees them. Discovery (/api, /apis/<group>) is left out: anyone may."""
    assert world.kube.cluster is not None
    calls = set()
    for request in world.kube.cluster.calls[since:]:
        if not request.headers.get("User-Agent", "").startswith("kopf/"):
            continue  # the test's own calls, as kubectl
        if request.resource is None or request.resource.plural is None:
            continue
        verb = VERBS.get(request.action.name) or request.method.lower()  # UPDATE: patch
        resource = request.resource.plural + (
            f"/{request.subresource}" if request.subresource else ""
        )
        calls.add(
            Call(
                request.resource.group, resource, verb, request.name or "", request.namespace or ""
            )
        )
    return calls


def cluster_role() -> dict[str, Any]:
    documents = yaml.safe_load_all((MANIFESTS / "operator" / "rbac.yaml").read_text())
    (role,) = [doc for doc in documents if doc["kind"] == "ClusterRole"]
    return dict(role)


def test_the_operators_calls_and_its_rbac_manifest_match_exactly(world):
    """Every call the operator makes is allowed by rbac.yaml's ClusterRole, and every
    right there is used (with kopf's peering on, as the Deployment runs it)."""
    role = cluster_role()
    (peering,) = yaml.safe_load_all((MANIFESTS / "operator" / "peering.yaml").read_text())
    world.kube.request("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering)
    world.restart_operator(peering="shorty-operator")
    try:
        ns = namespace()
        world.kube.apply(shortlink("audited", ns))
        world.kube.apply(shortlink("refused", ns, code="api"))  # an event
        synced(world, "audited", ns)
        reason_is(world, "refused", ns, "InvalidSpec")
        wait_for(lambda: events_for(world, ns, "refused", "InvalidSpec"), 10, "the event")
        world.kube.delete("audited", ns)
        wait_for(lambda: world.kube.get("audited", ns) is None, 30, "the object to go")
        heartbeat = world.kube.request(
            "GET", "/apis/kopf.dev/v1/clusterkopfpeerings/shorty-operator"
        )
        assert heartbeat.get("status"), "the operator keeps its heartbeat in the peering object"
    finally:
        world.restart_operator()

    made = {call[:4] for call in operator_calls(world)}
    refused = [call for call in sorted(made) if not any(matches(r, *call) for r in role["rules"])]
    assert not refused, f"calls the ClusterRole does not allow: {refused}"
    unused = [
        (rule["resources"], verb)
        for rule in role["rules"]
        for verb in rule["verbs"]
        if not any(matches({**rule, "verbs": [verb]}, *call) for call in made)
    ]
    assert not unused, f"rights never used: {unused}\ncalls: {sorted(made)}"
