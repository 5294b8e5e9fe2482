"""A log line or an event as dotted field names, the names Elasticsearch, Kibana and the
ECS reference give its fields: nested objects and dotted keys alike (``{"log": {"level":
...}}`` and ``{"log.level": ...}`` are both ``log.level``, as Filebeat's expand_keys and
Logstash's dotted-keys filter make the one of the other). The one flattening every test
of tests/elk uses."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def flatten(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of each leaf, in order. A field given twice (a dotted key and
    an object naming the same field) comes twice, each value to be checked. An empty
    object is a leaf of its own, its name with the value ``{}``: a check of the names
    sees it."""
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from flatten(value, name + ".")
        else:
            yield name, value


def flat(record: dict[str, Any], *, empty_objects: bool = True) -> dict[str, Any]:
    """The leaves by dotted name; a name given twice is an error (which value would it
    be?). With ``empty_objects=False`` an empty object is no field at all."""
    leaves: dict[str, Any] = {}
    for name, value in flatten(record):
        if value == {} and not empty_objects:
            continue
        assert name not in leaves, f"{name} is given twice: {record}"
        leaves[name] = value
    return leaves


def under(name: str, above: str) -> bool:
    """``name`` is the field ``above`` or a field inside it (``error.type`` is under
    ``error``; ``errors`` is not)."""
    return name == above or name.startswith(above + ".")
