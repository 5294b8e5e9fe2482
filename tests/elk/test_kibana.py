"""elk/kibana/saved-objects.ndjson: Kibana's import format parses, every reference
resolves within the file, the data views cover the template's data streams, and every
field a search or a visualisation names is one the lines carry or a collector adds
(and is mapped, so Kibana can query it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from tests.elk.capture import SERVICES, Captured
from tests.elk.mappings import (
    DATA_STREAMS,
    PIPELINE_FIELDS,
    SAVED_OBJECTS,
    index_template,
    mapped_fields,
    mapping_of,
    saved_objects,
    template_takes,
)

RECORDS = "___records___"  # Lens's "count of documents" column names no field
# What a dashboard's panel may show, and the saved-object type that holds it by reference.
PANEL_TYPES = {"lens": "lens", "search": "search", "visualization": "visualization"}
# Values of these fields in a query must be values the lines carry (a misspelt service
# or logger would match nothing, silently).
CLOSED_VALUES = ("service.name", "log.logger", "event.action", "event.outcome")


def of_type(kind: str) -> list[dict[str, Any]]:
    return [item for item in saved_objects() if item["type"] == kind]


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(dashboard["attributes"]["panelsJSON"])
    return found


def lens_states(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, Lens attributes) of every Lens visualisation: saved, or by value in a panel."""
    for item in objects:
        if item["type"] == "lens":
            yield item["id"], item["attributes"]
        if item["type"] == "dashboard":
            for panel in panels(item):
                attributes = panel.get("embeddableConfig", {}).get("attributes")
                if panel["type"] == "lens" and attributes:
                    yield f"{item['id']}/{panel['panelIndex']}", attributes


def search_sources(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for item in objects:
        meta = item["attributes"].get("kibanaSavedObjectMeta")
        if meta and meta.get("searchSourceJSON"):
            yield item["id"], json.loads(meta["searchSourceJSON"])


def queries(objects: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(where, KQL) of every query: searches', dashboards', Lens states' and columns'."""
    for where, source in search_sources(objects):
        query = source.get("query", {})
        assert query.get("language") == "kuery", f"{where}: only KQL is checked"
        yield where, query["query"]
    for where, lens in lens_states(objects):
        query = lens["state"]["query"]
        assert query["language"] == "kuery", f"{where}: only KQL is checked"
        yield where, query["query"]
        for layer in lens["state"]["datasourceStates"]["formBased"]["layers"].values():
            for column_id, column in layer["columns"].items():
                if "filter" in column:
                    assert column["filter"]["language"] == "kuery", f"{where}/{column_id}"
                    yield f"{where}/{column_id}", column["filter"]["query"]


def kql_fields(query: str) -> Iterator[tuple[str, list[str]]]:
    """(field, quoted values) of each ``field : value`` / ``field >= n`` in a KQL query.
    Small and honest: quoted strings are set aside first, so a value is never taken
    for a field; a value list ``("a" or "b")`` gives each value."""
    quoted: list[str] = []

    def keep(match: re.Match[str]) -> str:
        quoted.append(match[1])
        return f"\x00{len(quoted) - 1}\x00"

    text = re.sub(r'"((?:[^"\\]|\\.)*)"', keep, query)
    pattern = r"([@\w][\w.@-]*)\s*(:|>=|<=|>|<)\s*(\([^)]*\)|\S+)"
    for field, _, value in re.findall(pattern, text):
        values = [quoted[int(index)] for index in re.findall(r"\x00(\d+)\x00", value)]
        yield field, values


def named_fields(objects: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """(where, field) of every field a saved object names: in KQL, in Lens columns, in a
    search's columns and sort, in a data view's field formats."""
    for where, query in queries(objects):
        for field, _ in kql_fields(query):
            yield where, field
    for where, lens in lens_states(objects):
        for layer in lens["state"]["datasourceStates"]["formBased"]["layers"].values():
            for column in layer["columns"].values():
                if column.get("sourceField") not in (None, RECORDS):
                    yield where, column["sourceField"]
    for item in objects:
        attributes = item["attributes"]
        if item["type"] == "search":
            yield from ((item["id"], field) for field in attributes["columns"])
            yield from ((item["id"], field) for field, _ in attributes["sort"])
        if item["type"] == "index-pattern":
            yield item["id"], attributes["timeFieldName"]
            yield from ((item["id"], field) for field in json.loads(attributes["fieldFormatMap"]))


def test_every_line_is_a_saved_object_with_a_unique_id():
    objects = saved_objects()
    assert SAVED_OBJECTS.read_text().endswith("\n")
    for item in objects:
        assert {"id", "type", "attributes", "references"} <= item.keys(), item.get("id")
        assert item["attributes"]["title"], item["id"]
    ids = [item["id"] for item in objects]
    assert len(ids) == len(set(ids)), (
        f"ids used twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    )
    kinds = {item["type"] for item in objects}
    assert kinds == {"index-pattern", "search", "dashboard"}


def test_every_reference_resolves_within_the_file():
    objects = saved_objects()
    known = {(item["type"], item["id"]) for item in objects}
    wrong = []
    for item in objects:
        names = [ref["name"] for ref in item["references"]]
        assert len(names) == len(set(names)), f"{item['id']}: a reference name used twice"
        wrong += [
            f"{item['id']} → {ref['type']} {ref['id']}"
            for ref in item["references"]
            if (ref["type"], ref["id"]) not in known
        ]
    for where, lens in lens_states(objects):
        wrong += [
            f"{where} → {ref['type']} {ref['id']}"
            for ref in lens["references"]
            if (ref["type"], ref["id"]) not in known
        ]
    assert not wrong, "unresolved references:\n" + "\n".join(wrong)


def test_every_use_of_a_reference_names_one():
    """A search's data view, a panel's saved object and a Lens layer's data view are each
    found through a named reference of the object holding them."""
    objects = saved_objects()
    wrong = []
    for where, source in search_sources(objects):
        item = next(item for item in objects if item["id"] == where)
        names = {ref["name"]: ref for ref in item["references"]}
        if "indexRefName" in source:
            ref = names.get(source["indexRefName"])
            if ref is None or ref["type"] != "index-pattern":
                wrong.append(f"{where}: no data view reference {source['indexRefName']}")
        if item["type"] == "search":
            assert "indexRefName" in source, f"{where}: a search without a data view"
    for dashboard in of_type("dashboard"):
        refs = {ref["name"]: ref for ref in dashboard["references"]}
        indexes = [panel["panelIndex"] for panel in panels(dashboard)]
        assert len(indexes) == len(set(indexes)), f"{dashboard['id']}: a panelIndex used twice"
        for panel in panels(dashboard):
            index = panel["panelIndex"]
            assert panel["gridData"]["i"] == index
            if "panelRefName" in panel:
                ref = refs.get(f"{index}:{panel['panelRefName']}")
                if ref is None or ref["type"] != PANEL_TYPES[panel["type"]]:
                    wrong.append(f"{dashboard['id']}/{index}: no {panel['type']} reference")
                continue
            lens = panel["embeddableConfig"]["attributes"]
            own = {ref["name"]: ref for ref in lens["references"]}
            for layer in lens["state"]["datasourceStates"]["formBased"]["layers"]:
                name = f"indexpattern-datasource-layer-{layer}"
                if own.get(name, {}).get("type") != "index-pattern":
                    wrong.append(f"{dashboard['id']}/{index}: layer {layer} has no data view")
                if refs.get(f"{index}:{name}") != own.get(name, {}) | {"name": f"{index}:{name}"}:
                    wrong.append(f"{dashboard['id']}/{index}: the dashboard lacks {name}")
    assert not wrong, "\n".join(wrong)


def test_lens_columns_are_whole():
    """Each layer's columnOrder lists its columns, and each accessor of the chart names
    one (Lens shows an empty panel otherwise)."""
    for where, lens in lens_states(saved_objects()):
        layers = lens["state"]["datasourceStates"]["formBased"]["layers"]
        for layer in layers.values():
            assert sorted(layer["columnOrder"]) == sorted(layer["columns"]), where
            for column_id, column in layer["columns"].items():
                order_by = column.get("params", {}).get("orderBy", {})
                if order_by.get("type") == "column":
                    assert order_by["columnId"] in layer["columns"], f"{where}/{column_id}"
        for chart_layer in lens["state"]["visualization"]["layers"]:
            columns = layers[chart_layer["layerId"]]["columns"]
            accessors = [
                chart_layer.get("xAccessor"),
                chart_layer.get("splitAccessor"),
                *chart_layer["accessors"],
            ]
            missing = [a for a in accessors if a is not None and a not in columns]
            assert not missing, f"{where}: accessors without a column: {missing}"


def test_data_views_cover_the_data_streams_of_the_template():
    views = {item["id"]: item["attributes"] for item in of_type("index-pattern")}
    patterns = index_template()["index_patterns"]
    for view in views.values():
        assert view["timeFieldName"] == "@timestamp"
        for title in view["title"].split(","):
            # Whatever a view reads is a data stream the template makes.
            assert template_takes(title.replace("*", "default")), title
    assert views["shorty-logs"]["title"] in patterns, "the all-services view reads them all"
    for service in SERVICES:
        view = views[f"shorty-logs-{service}"]
        reads = [s for s in DATA_STREAMS if fnmatchcase(s, view["title"])]
        assert reads == [f"logs-shorty.{service}-default"], view["title"]


def test_event_duration_shows_as_a_duration():
    for view in of_type("index-pattern"):
        formats = json.loads(view["attributes"]["fieldFormatMap"])
        duration = formats["event.duration"]
        assert duration["id"] == "duration"
        assert duration["params"]["inputFormat"] == "nanoseconds"  # as the access lines log it


def test_slow_request_thresholds():
    """100 ms for a redirect (ten times its 10 ms p99 target, docs/performance.md; a fifth
    of its 0.5 s deadline), 1 s for the API (a fifth of its 5 s budget): in nanoseconds."""
    [slow] = [item for item in of_type("search") if item["id"] == "shorty-slow-requests"]
    [(_, source)] = search_sources([slow])
    query = source["query"]["query"]
    assert 'service.name : "shorty-redirect" and event.duration > 100000000' in query
    assert 'service.name : "shorty-api" and event.duration > 1000000000' in query


def test_kql_extraction_sees_fields_and_values():
    found = list(kql_fields('a.b : ("x" or "y:z") and c >= 500 or @timestamp < "now" and d:*'))
    assert found == [("a.b", ["x", "y:z"]), ("c", []), ("@timestamp", ["now"]), ("d", [])]


@pytest.fixture(scope="module")
def carried(captured: Captured) -> dict[str, set[Any]]:
    """Each field the captured lines carry, with the values seen."""
    return {
        name: {json.dumps(value) if isinstance(value, list) else value for _, value in seen}
        for name, seen in captured.fields().items()
    }


def test_every_field_named_is_carried_or_added_and_mapped(carried: dict[str, set[Any]]):
    fields = mapped_fields()
    wrong = set()
    for where, field in named_fields(saved_objects()):
        if field not in carried and field not in PIPELINE_FIELDS:
            wrong.add(f"{where}: {field} is in no line and added by no collector")
        if mapping_of(fields, field) != field:
            wrong.add(f"{where}: {field} is not mapped by the index template")
    assert not wrong, "\n".join(sorted(wrong))


def test_values_in_queries_are_values_the_lines_carry(carried: dict[str, set[Any]]):
    wrong = []
    for where, query in queries(saved_objects()):
        for field, values in kql_fields(query):
            if field in CLOSED_VALUES:
                wrong += [f"{where}: {field} : {v!r}" for v in values if v not in carried[field]]
    assert not wrong, "values no line carries:\n" + "\n".join(wrong)
