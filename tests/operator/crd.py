"""What the Kubernetes API server would check of a ShortLink, without one.

kmock stores whatever it is given; a real API server applies the CRD's schema
defaults, validates the object against its ``openAPIV3Schema`` and evaluates
its ``x-kubernetes-validations`` (CEL) rules. This does the same from the CRD
file itself (jsonschema for the schema, cel-python for the rules), so every
example and test object is one a cluster would accept.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "manifests" / "crds" / "shortlinks.shorty.dev.yaml"
EXAMPLES = ROOT / "manifests" / "examples"


class Rejected(ValueError):
    """The API server would refuse the object; the message says why."""


@cache
def crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def schema() -> dict[str, Any]:
    (version,) = crd()["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def with_defaults(obj: dict[str, Any], node: dict[str, Any] | None = None) -> dict[str, Any]:
    """``obj`` with the schema's defaults filled in, as the API server stores it."""
    node = schema() if node is None else node
    out = copy.deepcopy(obj)
    for name, sub in node.get("properties", {}).items():
        if name not in out and "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        if isinstance(out.get(name), dict):
            out[name] = with_defaults(out[name], sub)
    return out


def _rules(node: dict[str, Any], path: tuple[str, ...] = ()):
    for rule in node.get("x-kubernetes-validations", []):
        yield path, rule
    for name, sub in node.get("properties", {}).items():
        yield from _rules(sub, (*path, name))


def admit(obj: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    """The object as stored (defaults applied), or Rejected. ``old``: the stored
    object this one replaces (transition rules compare the two)."""
    stored = with_defaults(obj)
    checker = jsonschema.Draft7Validator(schema(), format_checker=jsonschema.FormatChecker())
    errors = sorted(checker.iter_errors(stored), key=lambda e: list(e.path))
    if errors:
        raise Rejected("; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors))
    env = celpy.Environment()
    for path, rule in _rules(schema()):
        value, previous = stored, with_defaults(old) if old is not None else None
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
            previous = previous.get(key) if isinstance(previous, dict) else None
        if value is None:
            continue
        activation = {"self": celpy.json_to_cel(value)}
        if "oldSelf" in rule["rule"]:
            if previous is None:
                continue  # a transition rule: only on updates
            activation["oldSelf"] = celpy.json_to_cel(previous)
        result = env.program(env.compile(rule["rule"])).evaluate(activation)
        if not result:
            raise Rejected(f"{'.'.join(path)}: {rule['message']}")
    return stored


def examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))
