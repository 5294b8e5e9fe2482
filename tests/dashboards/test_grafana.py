"""dashboards/grafana: each dashboard type-checks against Grafana's own schema (npm
``@grafana/schema``, with tsc), each panel against its panel type's options; the
conventions hold (the data source a variable, our own fixed uids, $__rate_interval,
a unit on every panel, every query on $namespace); the files are what
scripts/dashboards.py writes."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.dashboards.queries import Json, dashboards, panels, selectors, substitute
from tests.elk import node

PANELCFG = "@grafana/schema/dist/esm/raw/composable/{0}/panelcfg/x/{1}PanelCfg_types.gen"
# Panel types the dashboards use → (the module of its options in @grafana/schema, the
# panel's type: its options, and its field config where the panel has one of its own).
PANEL_TYPES = {
    "timeseries": (
        PANELCFG.format("timeseries", "TimeSeries"),
        "PromPanel<timeseries.Options, timeseries.FieldConfig>",
    ),
    "stat": (PANELCFG.format("stat", "Stat"), "PromPanel<stat.Options>"),
}
# JSON holds an enum's value, never the enum: every string enum of the schema taken as
# the union of its values ("absolute", not ThresholdsMode.Absolute), all the way down.
PREAMBLE = """\
import type { AnnotationQuery, Dashboard, DataQuery, Panel, RowPanel } from '@grafana/schema'
{imports}

// Prometheus' query (the data source plugin's PromQuery): @grafana/schema has no type of
// its own for it, only DataQuery, which every query extends.
interface PromQuery extends DataQuery {
  expr: string
  legendFormat?: string
  range?: boolean
  instant?: boolean
  editorMode?: 'code' | 'builder'
  format?: 'time_series' | 'table' | 'heatmap'
  interval?: string
  exemplar?: boolean
}
// Panel<Options> leaves its options untyped: they are typed here.
type PromPanel<O = Record<string, unknown>, F = Record<string, unknown>> =
  Omit<Panel<O, F>, 'targets' | 'options'> & { targets?: PromQuery[]; options?: O }
type Board = Omit<Dashboard, 'panels' | 'annotations'> & {
  panels?: Array<PromPanel | RowPanel>
  annotations?: { list?: AnnotationQuery<PromQuery>[] }
}

type Json<T> = T extends string
  ? `${T}`
  : T extends readonly (infer U)[]
    ? Json<U>[]
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T
"""


def identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)


def typescript(boards: dict[str, Json]) -> str:
    """Each dashboard inlined as a typed const (a literal is checked key by key, an
    imported .json file would not be), then each panel typed with its own options."""
    imports = "\n".join(
        f"import type * as {kind} from '{module}'" for kind, (module, _) in PANEL_TYPES.items()
    )
    lines = [PREAMBLE.replace("{imports}", imports)]
    for name, board in boards.items():
        const = identifier(name.removesuffix(".json"))
        lines.append(f"export const {const}: Json<Board> = {json.dumps(board)}")
        for panel in panels(board):
            kind = panel["type"]
            typed = PANEL_TYPES[kind][1]
            lines.append(
                f"export const {const}_panel_{panel['id']}: Json<{typed}> = {json.dumps(panel)}"
            )
    return "\n".join(lines) + "\n"


def tsc(js: Path, files: list[Path]) -> dict[str, list[str]]:
    """The type errors of ``files`` by file name, against ``js``'s packages."""
    errors: dict[str, list[str]] = {}
    for name, _, error in node.tsc(files, folder=js):
        errors.setdefault(name, []).append(error)
    return errors


def _first(kind: str) -> Callable[[Json], Json]:
    def find(board: Json) -> Json:
        return next(p for p in panels(board) if p["type"] == kind)

    return find


# Mistakes the type check must catch, one broken copy of the overview each.
BROKEN: dict[str, tuple[Callable[[Json], None], str]] = {
    "a-misspelt-dashboard-key": (
        lambda b: b.update(schemaversion=b.pop("schemaVersion")),
        "'\"schemaversion\"' does not exist",
    ),
    "a-version-as-text": (
        lambda b: b.update(schemaVersion="42"),
        "not assignable to type 'number'",
    ),
    "a-panel-without-height": (
        lambda b: _first("timeseries")(b)["gridPos"].pop("h"),
        "Property 'h' is missing",
    ),
    "a-misspelt-unit-key": (
        lambda b: _first("timeseries")(b)["fieldConfig"]["defaults"].update(units="s"),
        "'\"units\"' does not exist",
    ),
    "an-unknown-threshold-mode": (
        lambda b: _first("stat")(b)["fieldConfig"]["defaults"]["thresholds"].update(mode="absolut"),
        "'\"absolut\"' is not assignable",
    ),
    "a-legend-in-the-middle": (
        lambda b: _first("timeseries")(b)["options"]["legend"].update(placement="middle"),
        "'\"middle\"' is not assignable",
    ),
    "a-stat-without-its-text-mode": (
        lambda b: _first("stat")(b)["options"].pop("textMode"),
        "Property 'textMode' is missing",
    ),
    "a-variable-without-a-name": (
        lambda b: b["templating"]["list"][1].pop("name"),
        "Property 'name' is missing",
    ),
}


def test_the_dashboards_type_check_and_broken_copies_do_not(dashboard_js: Path, tmp_path: Path):
    good = tmp_path / "dashboards.ts"
    good.write_text(typescript(dashboards()))
    broken = {}
    for label, (mutate, _) in BROKEN.items():
        board = copy.deepcopy(dashboards()["shorty-overview.json"])
        mutate(board)
        broken[label] = tmp_path / f"broken-{label}.ts"
        broken[label].write_text(typescript({"broken.json": board}))
    errors = tsc(dashboard_js, [good, *broken.values()])
    assert "dashboards.ts" not in errors, "\n".join(errors["dashboards.ts"])
    for label, (_, says) in BROKEN.items():
        found = errors.get(broken[label].name, [])
        assert any(says in error for error in found), f"{label}: {found}"


def test_the_schema_version_is_the_current_one(dashboard_js: Path):
    done = node.run(
        "-e",
        "process.stdout.write(String(require('@grafana/schema').defaultDashboard.schemaVersion))",
        folder=dashboard_js,
    )
    assert done.returncode == 0, done.stderr
    for name, board in dashboards().items():
        assert board["schemaVersion"] == int(done.stdout), name


EXPECTED = {
    "shorty-overview.json",
    "shorty-redirect.json",
    "shorty-api.json",
    "shorty-pipeline.json",
    "shorty-operator.json",
    "shorty-dependencies.json",
}


def test_the_dashboards_are_there_with_uids_of_their_own():
    assert set(dashboards()) == EXPECTED
    for name, board in dashboards().items():
        assert board["uid"] == name.removesuffix(".json")
        assert "id" not in board or board["id"] is None, name
        assert "shorty" in board["tags"]


def datasources(value: Any) -> list[Json]:
    """Every "datasource" object anywhere in a dashboard."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "datasource" and isinstance(item, dict):
                found.append(item)
            found += datasources(item)
    elif isinstance(value, list):
        for item in value:
            found += datasources(item)
    return found


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_data_source_is_the_datasource_variable(name: str):
    board = dashboards()[name]
    [variable] = [v for v in board["templating"]["list"] if v["name"] == "datasource"]
    assert variable["type"] == "datasource"
    assert variable["query"] == "prometheus"
    for source in datasources(board):
        if source.get("type") == "grafana":  # Grafana's built-in annotations
            assert source["uid"] == "-- Grafana --"
            continue
        assert source == {"type": "prometheus", "uid": "${datasource}"}, source


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_panel_has_a_unit_a_description_and_a_query(name: str):
    for panel in panels(dashboards()[name]):
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel.get("description"), panel["title"]
        assert panel.get("targets"), panel["title"]


SLO_WINDOW = "[30d]"  # the overview's SLO stats: the SLO's own window, on purpose


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rates_use_the_rate_interval_and_every_selector_the_namespace(name: str):
    for panel in panels(dashboards()[name]):
        for target in panel["targets"]:
            expr = target["expr"]
            windows = set(re.findall(r"\[[^\]]+\]", expr))
            assert windows <= {"[$__rate_interval]", SLO_WINDOW}, (panel["title"], windows)
            if SLO_WINDOW in windows:
                assert panel["type"] == "stat", panel["title"]
            for selector in selectors(substitute(expr)):
                namespace = [m for m in selector.matchers if m[0] == "namespace"]
                assert namespace == [("namespace", "=~", "shorty")], (panel["title"], selector)


def test_the_files_are_what_the_script_writes():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "dashboards.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
