"""The Logstash pipelines of elk/logstash/ as data: parsed with PyPI ``lscl`` (the
grammar of Logstash's configuration language, with strings kept raw as Logstash keeps
them when ``config.support_escapes`` is off), walked plugin by plugin, and the fields
each plugin reads and writes, by what its options mean.

No Logstash runs here: this is the grammar and what the options name, not the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lscl.lang import (
    LsclAttribute,
    LsclBlock,
    LsclConditions,
    LsclMatch,
    LsclNotMatch,
    LsclSelector,
)
from lscl.parser import parse_lscl
from pydantic import BaseModel

from tests.elk.mappings import LOGSTASH

PIPELINE_DIR = LOGSTASH / "pipeline"
# Where the chart mounts elk/logstash/pipeline/ in the Logstash container.
MOUNTED_PIPELINE_DIR = "/usr/share/logstash/pipeline"

# What the useragent filter writes under its target in ECS mode (its documentation's
# table; version parts go to @metadata).
USERAGENT_FIELDS = ("name", "version", "os.name", "os.version", "os.full", "device.name")
_SPRINTF = re.compile(r"%\{([^}]+)\}")
_GROK_CAPTURE = re.compile(r"%\{(\w+):([^}:]+)(?::\w+)?\}")
_NOT_SPRINTF = {("grok", "match"), ("grok", "pattern_definitions")}
_RUBY_SET = re.compile(r"event\.set\('([^']+)'")


@dataclass(frozen=True)
class Plugin:
    """One plugin block: its section (input, filter, output), name and options."""

    section: str
    name: str
    options: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.options.get("id", self.name))


def parse(path: Path) -> list[Any]:
    return parse_text(path.read_text())


def parse_text(text: str) -> list[Any]:
    """The sections of a pipeline; raises ``lscl.errors.DecodeError`` where Logstash
    would refuse the text."""
    return parse_lscl(text)


def plugins(tree: list[Any]) -> Iterator[Plugin]:
    """Every plugin of the pipeline, in order, inside conditionals or not."""
    for section in tree:
        yield from plugins_in(section.name, section.content)


def plugins_in(section: str, content: list[Any]) -> Iterator[Plugin]:
    for item in content:
        if isinstance(item, LsclBlock):
            options = {a.name: a.content for a in item.content if isinstance(a, LsclAttribute)}
            yield Plugin(section, item.name, options)
        elif isinstance(item, LsclConditions):
            for _, branch in item.conditions:
                yield from plugins_in(section, branch)
            if item.default:
                yield from plugins_in(section, item.default)


def conditions(tree: list[Any]) -> Iterator[LsclConditions]:
    """Every if / else if / else chain, outermost first."""

    def walk(content: list[Any]) -> Iterator[LsclConditions]:
        for item in content:
            if isinstance(item, LsclConditions):
                yield item
                for _, branch in item.conditions:
                    yield from walk(branch)
                yield from walk(item.default or [])
            elif isinstance(item, LsclBlock):
                yield from walk(item.content)

    return walk(tree)


def condition_parts(condition: Any) -> Iterator[Any]:
    """The nodes of one condition (selectors, comparisons, matches...), depth first."""
    yield condition
    if isinstance(condition, BaseModel):
        for name in type(condition).model_fields:
            yield from condition_parts(getattr(condition, name))
    elif isinstance(condition, list | tuple):
        for part in condition:
            yield from condition_parts(part)


def condition_regexes(tree: list[Any]) -> Iterator[str]:
    """The source of every ``=~`` / ``!~`` regular expression."""
    for chain in conditions(tree):
        for condition, _ in chain.conditions:
            for part in condition_parts(condition):
                if isinstance(part, LsclMatch | LsclNotMatch):
                    yield part.pattern.pattern


def field(reference: str) -> str:
    """``[a][b]`` or ``a`` as the dotted name ``a.b``."""
    reference = reference.strip()
    if reference.startswith("["):
        return ".".join(re.findall(r"\[([^\[\]]+)\]", reference))
    return reference


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _pairs(value: Any) -> dict[str, Any]:
    """A hash option (add_field), which Logstash also takes as an array of keys and
    values in turn."""
    if isinstance(value, dict):
        return value
    return dict(zip(value[::2], value[1::2], strict=True))


def reads(tree: list[Any]) -> set[str]:
    """Fields the pipeline reads: in conditions, in %{...} of values, and the source
    fields of its plugins' options."""
    found: set[str] = set()
    for chain in conditions(tree):
        for condition, _ in chain.conditions:
            for part in condition_parts(condition):
                if isinstance(part, LsclSelector):
                    found.add(".".join(part.names))
    for plugin in plugins(tree):
        for option, value in plugin.options.items():
            if (plugin.name, option) in _NOT_SPRINTF:
                continue  # grok's %{PATTERN:field} is a capture
            for text in _strings(value):
                found.update(field(name) for name in _SPRINTF.findall(text))
        options = plugin.options
        if plugin.name == "grok":
            found.update(field(name) for name in options.get("match", {}))
        if plugin.name == "mutate":
            found.update(field(name) for name in options.get("copy", {}))
            found.update(field(name) for name in options.get("rename", {}))
            found.update(field(name) for name in options.get("lowercase", []))
            found.update(field(name) for name in options.get("gsub", [])[::3])
        if plugin.name == "useragent":
            found.add(field(options["source"]))
    return found


def writes_of(plugin: Plugin) -> set[str]:
    """Fields one plugin sets (when it matches: grok, useragent)."""
    options = plugin.options
    found = {field(name) for name in _pairs(options.get("add_field", {}))}
    # Tags on failure: the given ones, by default "_<plugin>parsefailure" (grok).
    if options.get("add_tag") or options.get("tag_on_failure", plugin.name == "grok"):
        found.add("tags")
    if plugin.name == "mutate":
        found.update(field(name) for name in options.get("replace", {}))
        found.update(field(name) for name in options.get("copy", {}).values())
        found.update(field(name) for name in options.get("rename", {}).values())
    if plugin.name == "grok":
        for pattern in _grok_patterns(options):
            found.update(field(name) for _, name in _GROK_CAPTURE.findall(pattern))
    if plugin.name == "useragent":
        target = field(options.get("target", "[user_agent]"))
        found.update(f"{target}.{name}" for name in USERAGENT_FIELDS)
    if plugin.name == "ruby":
        found.update(field(name) for name in _RUBY_SET.findall(options.get("code", "")))
    return found


def removes(tree: list[Any]) -> set[str]:
    return {
        field(name) for plugin in plugins(tree) for name in plugin.options.get("remove_field", [])
    }


def _grok_patterns(options: dict[str, Any]) -> list[str]:
    patterns: list[str] = []
    for value in options.get("match", {}).values():
        patterns.extend([value] if isinstance(value, str) else value)
    return patterns


@dataclass(frozen=True)
class GrokFilter:
    """A grok filter's patterns, with its own pattern definitions."""

    id: str
    patterns: list[str]
    definitions: dict[str, str]


def groks(tree: list[Any]) -> list[GrokFilter]:
    return [
        GrokFilter(p.id, _grok_patterns(p.options), dict(p.options.get("pattern_definitions", {})))
        for p in plugins(tree)
        if p.name == "grok"
    ]


def pygrok_pattern(pattern: str) -> tuple[str, dict[str, str]]:
    """A Logstash grok pattern as PyPI ``pygrok`` takes it, and its capture names back to
    the fields they fill.

    Logstash's grok is Ruby-flavoured (Joni): ``^`` and ``$`` match at every line, and
    ``(?m)`` lets ``.`` match newlines; in Python ``^``/``$`` need MULTILINE and the dot
    needs DOTALL. pygrok names captures with word characters only, where Logstash takes
    field references (``%{WORD:[error][type]}``)."""
    names: dict[str, str] = {}

    def rename(match: re.Match[str]) -> str:
        word = re.sub(r"\W", "_", field(match.group(2)).replace(".", "__"))
        names[word] = field(match.group(2))
        return "%{" + match.group(1) + ":" + word + "}"

    return "(?m)" + pygrok_definition(_GROK_CAPTURE.sub(rename, pattern)), names


def pygrok_definition(regex: str) -> str:
    """A grok ``pattern_definitions`` regular expression in Python's flags."""
    return regex.replace("(?m)", "(?s)")
