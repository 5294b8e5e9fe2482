"""The configuration files ``shorty elk setup`` loads, read and checked before any
request is sent, so that a missing or broken file stops it naming the file.

Two layouts of ``--config-dir`` are read: the repository's ``elk/`` (files under
``elasticsearch/`` and ``kibana/``) and the flat folder the chart mounts from one
ConfigMap (a ConfigMap key holds no ``/``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shorty.elk import SetupError

ILM_POLICY = "ilm-policy.json"
INDEX_TEMPLATE = "index-template.json"
COMPONENT_TEMPLATE = "component-template-"  # component-template-<name>.json
WRITER_ROLE = "logstash-writer-role.json"
SAVED_OBJECTS = "saved-objects.ndjson"


@dataclass(frozen=True)
class ElasticsearchFiles:
    ilm_policy: dict[str, Any]
    component_templates: list[tuple[str, dict[str, Any]]]  # (name, body), by name
    index_template: dict[str, Any]
    writer_role: dict[str, Any]

    def templates_digest(self) -> str:
        """A digest of every template body: what decides whether the data streams must
        roll over to take a changed mapping."""
        text = json.dumps(
            [self.component_templates, self.index_template], sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SavedObjects:
    name: str
    data: bytes
    count: int


def folder(config_dir: Path, part: str) -> Path:
    """``config_dir/<part>`` when it exists (the repository's layout), else config_dir."""
    nested = config_dir / part
    return nested if nested.is_dir() else config_dir


def read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SetupError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"{path}: cannot read it ({exc})") from None
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SetupError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(body, dict):
        raise SetupError(f"{path}: not a JSON object")
    return body


def elasticsearch_files(config_dir: Path) -> ElasticsearchFiles:
    where = folder(config_dir, "elasticsearch")
    prefix, suffix = COMPONENT_TEMPLATE, ".json"
    components = [
        (path.name[len(prefix) : -len(suffix)], read_json(path))
        for path in sorted(where.glob(f"{prefix}*{suffix}"))
    ]
    return ElasticsearchFiles(
        ilm_policy=read_json(where / ILM_POLICY),
        component_templates=components,
        index_template=read_json(where / INDEX_TEMPLATE),
        writer_role=read_json(where / WRITER_ROLE),
    )


def saved_objects(config_dir: Path) -> SavedObjects:
    """The NDJSON export Kibana imports; each line must be a JSON object."""
    path = folder(config_dir, "kibana") / SAVED_OBJECTS
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SetupError(f"{path}: no such file") from None
    except OSError as exc:
        raise SetupError(f"{path}: cannot read it ({exc})") from None
    count = 0  # objects, not counting an export's summary line (it has no type)
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if not isinstance(item, dict):
            raise SetupError(f"{path}: line {number} is not a JSON object")
        count += "type" in item
    if count == 0:
        raise SetupError(f"{path}: no saved objects in it")
    return SavedObjects(path.name, data, count)
