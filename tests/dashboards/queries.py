"""What dashboards/ holds, read for the tests: the Grafana dashboards, the rule files
and their promtool tests, and every PromQL expression of either with the metric
selectors in it (parsed with PyPI ``promql-parser``)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from tests.conftest import ROOT

GRAFANA = ROOT / "dashboards" / "grafana"
RULES = ROOT / "dashboards" / "rules"
RULE_TESTS = RULES / "tests"

# What Grafana puts in place of its variables before the query reaches Prometheus;
# a value of the right kind is all the parser needs. Longest names first.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "6h",
    "${datasource}": "prometheus",
    "$namespace": "shorty",
    "$component": ".*",
    "$pod": ".*",
}
# label_values(<selector>, label): a Grafana variable's query, not PromQL.
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")

Json = dict[str, Any]


@dataclass(frozen=True)
class Selector:
    """One vector selector: its metric name and its matchers (label, op, value)."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]

    def equal(self, label: str) -> str | None:
        for name, op, value in self.matchers:
            if name == label and op == "=":
                return value
        return None


@dataclass(frozen=True)
class Query:
    where: str  # "shorty-api.json: Requests by route" / "slo.yaml: ShortyApiErrors"
    expr: str  # as written
    promql: str  # Grafana's variables substituted


def substitute(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


@cache
def dashboards() -> dict[str, Json]:
    return {path.name: json.loads(path.read_text()) for path in sorted(GRAFANA.glob("*.json"))}


def panels(board: Json) -> list[Json]:
    """Every panel, those inside rows included, rows left out."""
    found = []
    for panel in board.get("panels", []):
        if panel["type"] == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def rule_files() -> list[Path]:
    return sorted(RULES.glob("*.yaml"))


@cache
def rules() -> tuple[tuple[str, Json], ...]:
    """(file name, rule) of every rule of every group."""
    return tuple(
        (path.name, rule)
        for path in rule_files()
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    )


def alerts() -> dict[str, Json]:
    return {rule["alert"]: rule for _, rule in rules() if "alert" in rule}


def recorded() -> set[str]:
    return {rule["record"] for _, rule in rules() if "record" in rule}


def dashboard_queries() -> list[Query]:
    found = []
    for name, board in dashboards().items():
        for panel in panels(board):
            for target in panel.get("targets", []):
                where = f"{name}: {panel['title']} ({target['refId']})"
                found.append(Query(where, target["expr"], substitute(target["expr"])))
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match = LABEL_VALUES.match(variable["query"]["query"])
            assert match, f"{name}: variable {variable['name']} is not label_values(...)"
            selector = match["selector"]
            found.append(Query(f"{name}: ${variable['name']}", selector, substitute(selector)))
        for annotation in board["annotations"]["list"]:
            expr = annotation.get("target", {}).get("expr")
            if expr:
                where = f"{name}: annotation {annotation['name']}"
                found.append(Query(where, expr, substitute(expr)))
    return found


def rule_queries() -> list[Query]:
    return [
        Query(f"{file}: {rule.get('alert') or rule['record']}", rule["expr"], rule["expr"])
        for file, rule in rules()
    ]


def selectors(promql: str) -> list[Selector]:
    """The vector selectors of an expression (ValueError when it does not parse)."""
    found: list[Selector] = []

    def visit(node: object) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = tuple((m.name, _OPS[str(m.op)], m.value) for m in node.matchers.matchers)
            name = node.name or {n: v for n, _, v in matchers}.get("__name__", "")
            found.append(Selector(name, matchers))
        return True

    promql_parser.walk(promql_parser.parse(promql), visit)
    return found


_OPS = {
    "MatchOp.Equal": "=",
    "MatchOp.NotEqual": "!=",
    "MatchOp.Re": "=~",
    "MatchOp.NotRe": "!~",
}


@cache
def rule_tests() -> tuple[tuple[str, Json], ...]:
    """(file name, test) of every promtool test."""
    return tuple(
        (path.name, test)
        for path in sorted(RULE_TESTS.glob("*_test.yaml"))
        for test in yaml.safe_load(path.read_text())["tests"]
    )
