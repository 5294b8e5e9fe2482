"""Grafana dashboard JSON, built the same way every time (scripts/dashboards.py uses it).

Every panel gets the data source variable ``datasource`` (never a data source uid of
someone's Grafana), a unit, a description, thresholds and its panel type's options;
the layout (gridPos) and panel ids follow from the order of the panels. What Grafana's
schema (npm @grafana/schema) requires of each is checked by tests/dashboards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 42  # @grafana/schema's defaultDashboard (Grafana 12.x-13.x)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Json = dict[str, Any]


# ---- panels ----


def query(expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False) -> Json:
    return {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }


def _targets(queries: list[tuple[str, str]], instant: bool = False) -> list[Json]:
    return [
        query(expr, legend, chr(ord("A") + index), instant)
        for index, (expr, legend) in enumerate(queries)
    ]


def _thresholds(steps: list[tuple[float | None, str]]) -> Json:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


@dataclass
class Panel:
    """One panel; its place (gridPos) and id are given when the dashboard is laid out."""

    title: str
    description: str
    queries: list[tuple[str, str]]  # (PromQL, legend)
    unit: str
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    height: int = 8
    stack: bool = False
    min: float | None = None
    max: float | None = None
    thresholds: list[tuple[float | None, str]] = field(default_factory=list)
    mappings: list[Json] = field(default_factory=list)

    def to_json(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {"unit": self.unit}
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        if self.mappings:
            defaults["mappings"] = self.mappings
        steps = self.thresholds or [(None, "green")]
        defaults["thresholds"] = _thresholds(steps)
        if self.kind == "timeseries":
            defaults["color"] = {"mode": "palette-classic"}
            defaults["custom"] = {
                "drawStyle": "line",
                "lineWidth": 1,
                "fillOpacity": 10,
                "showPoints": "never",
                "spanNulls": False,
                "stacking": {"mode": "normal" if self.stack else "none", "group": "A"},
                "thresholdsStyle": {"mode": "dashed" if self.thresholds else "off"},
            }
            options: Json = {
                "legend": {
                    "calcs": ["mean", "max", "lastNotNull"],
                    "displayMode": "table",
                    "placement": "bottom",
                    "showLegend": True,
                },
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        else:
            defaults["color"] = {"mode": "thresholds"}
            options = {
                "colorMode": "value",
                "graphMode": "area",
                "justifyMode": "auto",
                "orientation": "auto",
                "percentChangeColorMode": "standard",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "showPercentChange": False,
                "textMode": "auto",
                "wideLayout": True,
            }
        return {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"x": x, "y": y, "w": self.width, "h": self.height},
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options,
            "targets": _targets(self.queries, instant=self.kind == "stat"),
        }


@dataclass
class Row:
    title: str


# ---- variables ----


def datasource_variable() -> Json:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def query_variable(name: str, label: str, expr: str, *, multi: bool = False) -> Json:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"qryType": 1, "query": expr, "refId": f"{name}-variable"},
        "hide": 0,
        "includeAll": multi,
        "multi": multi,
        **({"allValue": ".*"} if multi else {}),
        "options": [],
        "refresh": 2,  # on time range change: pods come and go
        "regex": "",
        "sort": 1,
    }


# ---- the dashboard ----


def dashboard(
    uid: str,
    title: str,
    description: str,
    items: list[Panel | Row],
    variables: list[Json],
    annotations: list[Json] | None = None,
    tag: str = "shorty",
) -> Json:
    """Panels laid out left to right, top to bottom (24 columns); a Row starts a line.
    The data source variable comes first, then ``variables``; every dashboard of the
    ``tag`` is a link at the top (keeping the time range and the variables)."""
    panels: list[Json] = []
    x = y = line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            x = line_height = 0
            panels.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
                    "panels": [],
                }
            )
            y += 1
            continue
        if x + item.width > 24:
            y += line_height
            x = line_height = 0
        panels.append(item.to_json(panel_id, x, y))
        x += item.width
        line_height = max(line_height, item.height)
    builtin = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [tag],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "refresh": "1m",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [builtin, *(annotations or [])]},
        "links": [
            {
                "title": tag.capitalize(),
                "type": "dashboards",
                "tags": [tag],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": [datasource_variable(), *variables]},
        "panels": panels,
    }


# ---- PromQL ----


def rate(metric: str, selector: str, by: str = "", window: str = "$__rate_interval") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{selector}}}[{window}]))"


def rate_sum(series: list[tuple[str, str]], by: str = "", window: str = "$__rate_interval") -> str:
    """The rates of several counters added up, e.g. requests answered and requests shed:
    their series have label sets of their own, so ``or`` keeps all of them and the sum
    adds them (either family may be missing)."""
    grouping = f" by ({by})" if by else ""
    rates = " or ".join(f"rate({metric}{{{selector}}}[{window}])" for metric, selector in series)
    return f"sum{grouping} ({rates})"


def quantile(q: float, metric: str, selector: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, {rate(metric + '_bucket', selector, labels)})"
