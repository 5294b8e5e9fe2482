"""Field truth: every field of every real log line is an ECS field of the right type
(npm ``@elastic/ecs``, the reference Elasticsearch mappings come from), or lives
under ``shorty.*``; and the lines carry what the Kibana objects and docs/logging.md
rely on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.elk.capture import SERVICES, TRACEPARENT, Captured
from tests.elk.fields import flatten

# The JSON value types an ECS field type accepts.
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "keyword": (str,),
    "constant_keyword": (str,),
    "wildcard": (str,),
    "match_only_text": (str,),
    "text": (str,),
    "ip": (str,),
    "date": (str,),
    "long": (int,),
    "integer": (int,),
    "unsigned_long": (int,),
    "float": (int, float),
    "scaled_float": (int, float),
    "boolean": (bool,),
    "flattened": (dict,),
    "object": (dict,),
}


def test_every_line_is_one_json_object(captured: Captured):
    for service in SERVICES:
        lines = [line for line in captured.lines[service] if line.strip()]
        assert lines, f"{service} wrote nothing"
        for line in lines:
            assert isinstance(json.loads(line), dict), f"{service}: {line[:200]}"


def test_every_field_is_ecs_or_shorty(captured: Captured, ecs_fields: dict[str, Any]):
    foreign = sorted(
        name
        for name in captured.fields()
        if name not in ecs_fields and not name.startswith("shorty.")
    )
    assert not foreign, f"neither ECS nor shorty.*: {foreign}"


def test_ecs_fields_have_the_reference_type(captured: Captured, ecs_fields: dict[str, Any]):
    wrong = []
    for name, seen in captured.fields().items():
        field = ecs_fields.get(name)
        if field is None:
            continue
        accepted = JSON_TYPES[field["type"]]
        for service, value in seen:
            values = value if isinstance(value, list) and field.get("normalize") else [value]
            if not all(
                isinstance(one, accepted) and not (isinstance(one, bool) and bool not in accepted)
                for one in values
            ):
                wrong.append(f"{service} {name}={value!r} is not {field['type']}")
        allowed = {entry["name"] for entry in field.get("allowed_values", ())}
        if allowed:
            wrong += [
                f"{service} {name}={value!r} is not one of ECS's values"
                for service, value in seen
                if value not in allowed
            ]
    assert not wrong, "\n".join(sorted(set(wrong)))


def access_lines(captured: Captured, service: str) -> list[dict[str, Any]]:
    return [r for r in captured.records(service) if r["log"]["logger"] == "shorty.request"]


def test_access_lines_carry_what_kibana_counts(captured: Captured):
    for service in ("api", "redirect"):
        lines = access_lines(captured, service)
        assert lines, service
        for line in lines:
            assert line["service"]["name"] == f"shorty-{service}"
            assert isinstance(line["event"]["duration"], int)
            assert line["http"]["response"]["status_code"] >= 100
            assert line["http"]["request"]["method"].isupper()
            assert line["url"]["path"].startswith("/")
    api = {r["http"]["response"]["status_code"]: r for r in access_lines(captured, "api")}
    assert {201, 401, 422, 429} <= api.keys()
    assert api[422]["error"]["code"] == "invalid-target"  # javascript:
    assert api[429]["error"]["code"] == "rate-limited"
    assert "error" not in api[201]
    assert all(len(r["trace"]["id"]) == 32 for r in api.values()), "the API traces every request"
    redirect = access_lines(captured, "redirect")
    assert {r["http"]["response"]["status_code"] for r in redirect} >= {302, 404}


def test_a_redirect_line_leads_to_its_trace(captured: Captured):
    traced = [r for r in access_lines(captured, "redirect") if "trace" in r]
    assert [r["trace"]["id"] for r in traced] == [TRACEPARENT.split("-")[1]]
    assert traced[0]["http"]["request"]["id"]


def test_redirect_lines_hold_no_client_address(captured: Captured):
    for record in captured.records("redirect"):
        names = {name for name, _ in flatten(record)}
        assert not {n for n in names if n.startswith(("client.", "source.", "related.ip"))}, record


def test_security_events_are_ecs_events(captured: Captured):
    audit = [r for r in captured.records("api") if r["log"]["logger"] == "shorty.audit"]
    failed_login = [
        r for r in audit if r["event"]["action"] == "login" and r["event"]["outcome"] == "failure"
    ]
    assert failed_login
    assert failed_login[0]["event"]["category"] == "authentication"
    assert "password" not in json.dumps(failed_login[0]).lower().replace('"wrong password"', "")
    logged_in = [
        r for r in audit if r["event"]["action"] == "login" and r["event"]["outcome"] == "success"
    ]
    assert len(logged_in) == 1
    assert logged_in[0]["user"]["id"].isdigit()  # ECS: a keyword


def test_operator_lines_name_the_shortlink(captured: Captured):
    about = [r for r in captured.records("operator") if "orchestrator" in r]
    assert about
    names = {r["orchestrator"]["resource"]["name"] for r in about}
    assert {"docs", "bad"} <= names
    for record in about:
        assert record["orchestrator"]["resource"]["type"] == "ShortLink"
        assert record["orchestrator"]["namespace"] == "default"
        assert len(record["orchestrator"]["resource"]["id"]) == 36  # a Kubernetes uid
    failures = [r for r in about if r.get("event", {}).get("action") == "reconcile"]
    assert [r["orchestrator"]["resource"]["name"] for r in failures] == ["bad"]
    assert failures[0]["log.level"] == "warning"
    assert failures[0]["event"]["outcome"] == "failure"
    assert failures[0]["event"]["reason"] == "InvalidSpec"


def test_library_noise_is_gone(captured: Captured):
    every = "".join(line for lines in captured.lines.values() for line in lines)
    assert "OperatorSettings(" not in every  # kopf's settings repr
    assert '"aiohttp.access"' not in every  # the operator's probes


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_names_itself(captured: Captured, service: str):
    assert {r["service"]["name"] for r in captured.records(service)} == {f"shorty-{service}"}
