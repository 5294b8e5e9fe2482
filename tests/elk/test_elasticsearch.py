"""elk/elasticsearch: the ILM policy, the component and index templates and the Logstash
writer role type-check against the official client's request types, and the mappings
take every field of the real log lines with the type ECS gives it — nothing more than
the lines and the collectors bring."""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from shorty.cli.elk import elk_setup
from shorty.elk.lifecycle import time_value
from shorty.elk.setup import INDEX_TEMPLATE, POLICY, WRITER_ROLE
from tests.conftest import ROOT
from tests.elk import node
from tests.elk.capture import Captured
from tests.elk.mappings import (
    CODE_FIELDS,
    DATA_STREAMS,
    PIPELINE_FIELDS,
    component_templates,
    ilm_policy,
    index_template,
    mapped_fields,
    mapping_of,
    template_takes,
    writer_role,
)

# A request's const name → (the client's request type, the request: the file's body and
# the name it is PUT under).
Requests = dict[str, tuple[str, dict[str, Any]]]


def requests() -> Requests:
    found: Requests = {
        "ilmPolicy": (
            "IlmPutLifecycleRequest",
            {"name": POLICY, **ilm_policy()},
        ),
        "indexTemplate": (
            "IndicesPutIndexTemplateRequest",
            {"name": INDEX_TEMPLATE, **index_template()},
        ),
        "writerRole": (
            "SecurityPutRoleRequest",
            {"name": WRITER_ROLE, **writer_role()},
        ),
    }
    for name, body in component_templates().items():
        found[f"component_{name.replace('-', '_')}"] = (
            "ClusterPutComponentTemplateRequest",
            {"name": name, **body},
        )
    return found


def typescript(found: Requests) -> str:
    """Each request inlined as a typed const: a literal is checked property by property
    (an unknown key is an error), which an imported .json file would not be."""
    lines = ["import type { estypes } from '@elastic/elasticsearch'", ""]
    for const, (request_type, request) in found.items():
        lines.append(f"export const {const}: estypes.{request_type} = {json.dumps(request)}")
    return "\n".join(lines) + "\n"


def _set(path: str, value: Any) -> Callable[[Requests], None]:
    """A mutation: set the value at ``const/key/key...`` (``-`` for a key to delete)."""

    def mutate(found: Requests) -> None:
        const, *keys, last = path.split("/")
        where = found[const][1]
        for key in keys:
            where = where[int(key)] if isinstance(where, list) else where[key]
        if value == "-":
            del where[last]
        else:
            where[last] = value

    return mutate


def _rename(path: str, new: str) -> Callable[[Requests], None]:
    def mutate(found: Requests) -> None:
        const, *keys, last = path.split("/")
        where = found[const][1]
        for key in keys:
            where = where[key]
        where[new] = where.pop(last)

    return mutate


# Mistakes the type check must catch, one broken copy each, and what tsc must say.
BROKEN: dict[str, tuple[Callable[[Requests], None], str]] = {
    "a-number-for-a-duration": (
        _set("ilmPolicy/policy/phases/hot/actions/rollover/max_age", 1),
        "not assignable to type 'Duration",
    ),
    "a-misspelt-phase": (
        _rename("ilmPolicy/policy/phases/warm", "wram"),
        "'\"wram\"' does not exist",
    ),
    "a-misspelt-action": (
        _rename("ilmPolicy/policy/phases/hot/actions/rollover", "roll_over"),
        "'\"roll_over\"' does not exist in type 'IlmActions'",
    ),
    "a-misspelt-mapping-type": (
        _set("component_shorty_logs_ecs/template/mappings/properties/@timestamp/type", "datetime"),
        "Type '\"datetime\"' is not assignable",
    ),
    "a-priority-as-text": (
        _set("indexTemplate/priority", "200"),
        "Type 'string' is not assignable to type 'number'",
    ),
    "a-misspelt-template-key": (
        _rename("indexTemplate/index_patterns", "index_pattern"),
        "'\"index_pattern\"' does not exist in type 'IndicesPutIndexTemplateRequest'",
    ),
    "privileges-not-a-list": (
        _set("writerRole/indices/0/privileges", "create_doc"),
        "not assignable to type 'string[]'",
    ),
    "a-component-without-template": (
        _rename("component_shorty_logs_shorty/template", "templates"),
        "'\"templates\"' does not exist in type 'ClusterPutComponentTemplateRequest'",
    ),
}


def tsc(files: list[Path]) -> dict[str, list[str]]:
    """The type errors of ``files`` by file name."""
    errors: dict[str, list[str]] = {}
    for name, _, error in node.tsc(files):
        errors.setdefault(name, []).append(error)
    return errors


def test_requests_type_check_and_broken_copies_do_not(js: None, tmp_path: Path):
    good = tmp_path / "requests.ts"
    good.write_text(typescript(requests()))
    broken = {}
    for label, (mutate, _) in BROKEN.items():
        found = copy.deepcopy(requests())
        mutate(found)
        broken[label] = tmp_path / f"broken-{label}.ts"
        broken[label].write_text(typescript(found))
    errors = tsc([good, *broken.values()])
    assert "requests.ts" not in errors, errors["requests.ts"]
    for label, (_, says) in BROKEN.items():
        found_errors = errors.get(broken[label].name, [])
        assert any(says in error for error in found_errors), f"{label}: {found_errors}"


# The JSON value a mapping type takes (ES would coerce more; the lines should not need it).
def _date(value: object) -> bool:
    try:
        datetime.fromisoformat(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _ip(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


TAKES: dict[str, Callable[[object], bool]] = {
    "keyword": lambda v: isinstance(v, str),
    "constant_keyword": lambda v: isinstance(v, str),
    "wildcard": lambda v: isinstance(v, str),
    "match_only_text": lambda v: isinstance(v, str),
    "date": _date,
    "ip": _ip,
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    # A leaf under an open object: any scalar in a flattened field, a string where the
    # dynamic template maps strings (kubernetes.labels.*).
    "flattened": lambda v: isinstance(v, str | int | float | bool),
    "object": lambda v: isinstance(v, str),
}


def test_every_field_of_the_lines_is_mapped_with_a_type_that_takes_it(captured: Captured):
    fields = mapped_fields()
    wrong = set()
    for name, seen in captured.fields().items():
        mapped = mapping_of(fields, name)
        if mapped is None:
            wrong.update(f"{service}: {name} is not mapped" for service, _ in seen)
            continue
        kind = fields[mapped].get("type", "object")
        for service, value in seen:
            values = value if isinstance(value, list) else [value]
            if not all(TAKES[kind](one) for one in values):
                wrong.add(f"{service}: {name}={value!r} does not fit {mapped}'s {kind}")
    assert not wrong, "\n".join(sorted(wrong))


def test_every_mapping_has_a_source(captured: Captured):
    """A field is mapped because the lines carry it, a collector adds it, or the code
    writes it on a path the workload does not take (listed with where)."""
    fields = mapped_fields()
    carried = {mapping_of(fields, name) for name in captured.fields()}
    unexplained = sorted(set(fields) - carried - PIPELINE_FIELDS.keys() - CODE_FIELDS.keys())
    assert not unexplained, (
        f"mapped, but neither in the lines nor added by a collector: {unexplained}"
    )
    reached = sorted(carried & CODE_FIELDS.keys() - PIPELINE_FIELDS.keys())
    assert not reached, f"the lines carry these now: take them out of CODE_FIELDS: {reached}"
    unmapped = sorted((PIPELINE_FIELDS.keys() | CODE_FIELDS.keys()) - set(fields))
    assert not unmapped, f"listed but not mapped: {unmapped}"


@pytest.mark.parametrize("field", sorted(CODE_FIELDS))
def test_the_code_writes_the_fields_the_workload_does_not_reach(field: str):
    path, text = CODE_FIELDS[field]
    assert text in (ROOT / path).read_text(), f"{field}: {path} no longer has {text!r}"


def test_ecs_fields_are_mapped_as_ecs_maps_them(ecs_fields: dict[str, Any]):
    wrong = []
    for name, mapping in mapped_fields().items():
        field = ecs_fields.get(name)
        component = mapping["_component"]
        if field is None:
            expected = (
                "shorty-logs-shorty" if name.startswith("shorty.") else "shorty-logs-collectors"
            )
            if name not in PIPELINE_FIELDS and not name.startswith("shorty."):
                wrong.append(f"{name}: neither ECS, shorty.* nor added by a collector")
            if component != expected:
                wrong.append(f"{name}: not ECS, belongs in {expected} (is in {component})")
            continue
        if component != "shorty-logs-ecs":
            wrong.append(f"{name}: an ECS field, belongs in shorty-logs-ecs (is in {component})")
        if mapping.get("type") != field["type"]:
            wrong.append(f"{name}: {mapping.get('type')}, ECS says {field['type']}")
        ours_above, ecs_above = mapping.get("ignore_above"), field.get("ignore_above")
        if ours_above != ecs_above:
            wrong.append(f"{name}: ignore_above {ours_above}, ECS has it {ecs_above}")
        for option in ("index", "doc_values"):  # event.original: stored, never searched
            if mapping.get(option, True) != field.get(option, True):
                wrong.append(f"{name}: {option} {mapping.get(option)}, ECS has {field.get(option)}")
        ecs_multi = {multi["name"]: multi["type"] for multi in field.get("multi_fields", ())}
        ours = {sub: value["type"] for sub, value in mapping.get("fields", {}).items()}
        if ours != ecs_multi:
            wrong.append(f"{name}: multi-fields {ours}, ECS has {ecs_multi}")
    assert not wrong, "\n".join(wrong)


def test_no_field_is_left_to_dynamic_mapping():
    """Root ``dynamic: false``: a field no template names stays in _source, unindexed; the
    one open object is kubernetes.labels (pod labels, keyword by a dynamic template)."""
    assert index_template()["template"]["mappings"]["dynamic"] is False
    dynamic = [name for name, mapping in mapped_fields().items() if "dynamic" in mapping]
    assert dynamic == ["kubernetes.labels"]
    collectors = component_templates()["shorty-logs-collectors"]["template"]["mappings"]
    [labels] = collectors["dynamic_templates"]
    assert labels["kubernetes_labels"]["path_match"] == "kubernetes.labels.*"
    assert labels["kubernetes_labels"]["mapping"]["type"] == "keyword"
    for name, body in component_templates().items():
        assert "dynamic" not in body["template"]["mappings"], f"{name} sets the root's dynamic"


def test_the_template_takes_shortys_data_streams_and_no_others():
    template = index_template()
    for stream in DATA_STREAMS:
        assert template_takes(stream), stream
    for other in ("logs-generic-default", "logs-shortyish-default", "shorty.api-default"):
        assert not template_takes(other), other
    assert template["data_stream"] == {}
    assert template["priority"] > 100, "the built-in logs-*-* template (priority 100) would win"
    assert set(template["composed_of"]) == set(component_templates())
    settings = template["template"]["settings"]["index"]
    assert settings["lifecycle"]["name"] == POLICY
    # One replica once there are two nodes; none on a single node (which stays green).
    assert settings["auto_expand_replicas"] == "0-1"
    assert "number_of_replicas" not in settings


def test_ilm_goes_hot_warm_delete():
    phases = ilm_policy()["policy"]["phases"]
    assert list(phases) == ["hot", "warm", "delete"]
    rollover = phases["hot"]["actions"]["rollover"]
    assert rollover == {"max_primary_shard_size": "25gb", "max_age": "1d"}
    warm = phases["warm"]["actions"]
    assert warm["forcemerge"] == {"max_num_segments": 1}
    assert "readonly" in warm
    assert phases["delete"]["actions"] == {"delete": {}}
    # The ages shorty elk setup writes over (--warm-after, --retention) are its defaults:
    # the file says what a default install does.
    defaults = {param.name: param.default for param in elk_setup.params}
    assert phases["warm"]["min_age"] == defaults["warm_after"] == "2d"
    assert phases["delete"]["min_age"] == defaults["retention"] == "14d"
    ages = [time_value(phases[phase]["min_age"]).nanos for phase in phases]
    assert ages == sorted(set(ages)), "each phase starts after the one before"


def test_the_writer_role_only_appends_to_shortys_data_streams():
    role = writer_role()
    # monitor: Logstash reads the cluster's version and license when it connects.
    assert role["cluster"] == ["monitor"]
    [indices] = role["indices"]
    assert indices["names"] == index_template()["index_patterns"]
    # create_doc: append only (no overwrite, no delete); auto_configure: create the data
    # stream on its first document.
    assert sorted(indices["privileges"]) == ["auto_configure", "create_doc"]
    assert set(indices) == {"names", "privileges"}
    assert not {"run_as", "applications", "global", "remote_indices"} & role.keys()
