"""elk/'s files as the ELK tests read them: where they are, the saved objects, the index
template's mappings as flat field names. And where each field the captured lines do not
carry comes from: the pipeline's field contract (what Filebeat and Logstash add and take
away; test_filebeat.py and test_logstash.py hold each to its part), or code paths the
workload does not take. test_elasticsearch.py and test_kibana.py read both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from shorty.elk.files import COMPONENT_TEMPLATE
from tests.conftest import ROOT
from tests.elk.capture import SERVICES
from tests.elk.fields import under

ELK = ROOT / "elk"
ELASTICSEARCH = ELK / "elasticsearch"
KIBANA = ELK / "kibana"
LOGSTASH = ELK / "logstash"
FILEBEAT_CONFIG = ELK / "filebeat" / "filebeat.yml"
SAVED_OBJECTS = KIBANA / "saved-objects.ndjson"
# The data streams of Shorty's lines in the namespace "default": one per service, and
# shorty.other for a line of no known service (Logstash's routing).
DATA_STREAMS = tuple(f"logs-shorty.{service}-default" for service in (*SERVICES, "other"))

# The pipeline's field contract: what Filebeat (elk/filebeat/filebeat.yml) and Logstash
# (elk/logstash/pipeline/*.conf) add to a service's line and take away, with who does it
# and why. test_filebeat.py runs Filebeat and holds it to its part, test_logstash.py
# holds the pipelines to theirs; PIPELINE_FIELDS, built from both, is what reaches
# Elasticsearch besides the lines' own fields.

# Filebeat: what it adds to the event of a service's line, JSON or not.
FILEBEAT_ADDS: dict[str, str] = {
    "agent.name": "Filebeat: every event",
    "agent.type": "Filebeat: every event",
    "agent.version": "Filebeat: every event",
    "log.file.path": "Filebeat filestream: the container's log file",
    "container.id": "Filebeat kubernetes autodiscover",
    "container.image.name": "Filebeat kubernetes autodiscover",
    "container.runtime": "Filebeat kubernetes autodiscover",
    "orchestrator.cluster.name": "Filebeat kubernetes autodiscover",
    "orchestrator.cluster.url": "Filebeat kubernetes autodiscover",
    "kubernetes.namespace": "Filebeat kubernetes autodiscover",
    "kubernetes.pod.name": "Filebeat kubernetes autodiscover",
    "kubernetes.pod.uid": "Filebeat kubernetes autodiscover",
    "kubernetes.pod.ip": "Filebeat kubernetes autodiscover",
    "kubernetes.node.name": "Filebeat kubernetes autodiscover",
    "kubernetes.container.name": "Filebeat kubernetes autodiscover",
    "kubernetes.replicaset.name": "Filebeat kubernetes autodiscover: a Deployment's pod",
    "kubernetes.job.name": "Filebeat kubernetes autodiscover: a Job's pod (migrations, backup)",
    "kubernetes.labels": "Filebeat kubernetes autodiscover: the pod's labels, de-dotted",
}
# ...and to a line that is not JSON, besides message and @timestamp.
FILEBEAT_ADDS_TO_TEXT: dict[str, str] = {
    "ecs.version": "Filebeat: every event (a JSON line of Shorty's has its own, which wins)",
    "log.flags": "Filebeat multiline: lines joined (a plain-text traceback)",
    "error.type": 'Filebeat ndjson parser (add_error_key): "json", the line is not JSON',
    "error.message": "Filebeat ndjson parser (add_error_key): the decoding error",
}
# What Filebeat would add and does not send (filebeat.yml: drop_fields, disable_host).
FILEBEAT_DROPS: dict[str, str] = {
    "agent.ephemeral_id": "drop_fields: new on every start of Filebeat",
    "agent.id": "drop_fields: one per node's registry, kubernetes.node.name says as much",
    "input": "drop_fields: only input.type, always filestream",
    "log.offset": "drop_fields: the byte offset in a file kubelet rotates",
    "stream": "drop_fields: stdout or stderr, not ECS (a non-JSON line has error.type json)",
    "host.name": "publisher_pipeline.disable_host: the Filebeat pod's name",
}

# Logstash: what the pipelines add (WRITTEN in test_logstash.py says which filter).
LOGSTASH_ADDS: dict[str, str] = {
    "error.type": "Logstash main: a plain-text traceback's exception",
    "error.message": "Logstash main: a traceback's or command-line error's; dead-letter: why",
    "error.stack_trace": "Logstash main: a plain-text traceback or thread dump",
    "tags": "Logstash: shorty_plain_text, shorty_traceback_unparsed, shorty_deadletter",
    "user_agent.name": "Logstash main: useragent filter",
    "user_agent.version": "Logstash main: useragent filter",
    "user_agent.os.name": "Logstash main: useragent filter",
    "user_agent.os.version": "Logstash main: useragent filter",
    "user_agent.os.full": "Logstash main: useragent filter",
    "user_agent.device.name": "Logstash main: useragent filter",
    "data_stream.type": "Logstash: the routing (logs)",
    "data_stream.dataset": "Logstash: the routing (shorty.<service>, shorty.deadletter)",
    "data_stream.namespace": "Logstash: the routing (the Kubernetes namespace)",
    "event.dataset": "Logstash: the routing (as data_stream.dataset)",
    "event.original": "Logstash dead-letter: the refused event as JSON text",
    "event.created": "Logstash dead-letter: when Elasticsearch refused it",
    "event.kind": "Logstash dead-letter: pipeline_error",
}
# ...and what they remove (remove_field), with everything under it.
LOGSTASH_REMOVES: dict[str, str] = {
    "@version": "Logstash main: every Logstash event's, always 1",
    "error": "Logstash main: a plain-text line's, Filebeat's decoding error (tagged "
    "shorty_plain_text instead)",
}

# What the collectors add that reaches Elasticsearch, with who adds it. Only these and
# what the captured lines carry may be mapped or named in Kibana.
PIPELINE_FIELDS: dict[str, str] = {
    **{
        name: who
        for name, who in (FILEBEAT_ADDS | FILEBEAT_ADDS_TO_TEXT).items()
        if not any(under(name, removed) for removed in LOGSTASH_REMOVES)
    },
    **LOGSTASH_ADDS,
}

# Fields the services write on paths the scripted workload does not take, with the
# file that writes each and the text that names it there (checked: the list cannot
# outlive the code). Mapped so that these lines are searchable when they come.
CODE_FIELDS: dict[str, tuple[str, str]] = {
    "error.type": ("services/shorty/obs/requestlog.py", "log.exception"),
    "error.message": ("services/shorty/obs/requestlog.py", "log.exception"),
    "error.stack_trace": ("services/shorty/obs/requestlog.py", "log.exception"),
    "user.target.id": ("services/shorty/api/accounts.py", "user__target__id="),
    "user.email": ("services/shorty/store/bootstrap.py", '"user.email"'),
    "shorty.keys.revoked": ("services/shorty/store/bootstrap.py", '"shorty.keys.revoked"'),
    "shorty.traceparents": ("services/shorty/worker/events.py", '"shorty.traceparents"'),
    "shorty.code": ("services/shorty/usecases/links.py", "shorty__code="),
    "shorty.reason": ("services/shorty/usecases/links.py", "shorty__reason="),
    "shorty.key.id": ("services/shorty/api/accounts.py", "shorty__key__id="),
    "shorty.key.parent_id": ("services/shorty/api/accounts.py", "shorty__key__parent_id="),
    "shorty.key.scopes": ("services/shorty/api/accounts.py", "shorty__key__scopes="),
    "shorty.changes": ("services/shorty/api/accounts.py", "shorty__changes="),
    "shorty.chaos.id": ("services/shorty/resilience/faults.py", '"shorty.chaos.id"'),
    "shorty.chaos.dependency": (
        "services/shorty/resilience/faults.py",
        '"shorty.chaos.dependency"',
    ),
    "shorty.chaos.kind": ("services/shorty/resilience/faults.py", '"shorty.chaos.kind"'),
    "shorty.chaos.seconds": ("services/shorty/api/chaos.py", "shorty__chaos__seconds="),
    "shorty.chaos.latency_ms": ("services/shorty/store/chaos.py", 'params["latency_ms"]'),
    "shorty.chaos.rate": ("services/shorty/store/chaos.py", 'params["rate"]'),
}

# Mapping types whose value is an object a line fills freely (no field below is mapped).
OPEN_TYPES = frozenset({"flattened"})


def read_json(path: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(path.read_text())
    return body


def component_templates() -> dict[str, dict[str, Any]]:
    """Each component template's body by its name (as ``shorty elk setup`` names it)."""
    return {
        path.name[len(COMPONENT_TEMPLATE) : -len(".json")]: read_json(path)
        for path in sorted(ELASTICSEARCH.glob(f"{COMPONENT_TEMPLATE}*.json"))
    }


def index_template() -> dict[str, Any]:
    return read_json(ELASTICSEARCH / "index-template.json")


def template_takes(stream: str) -> bool:
    """The index template's patterns take the data stream ``stream``."""
    return any(fnmatchcase(stream, pattern) for pattern in index_template()["index_patterns"])


def ilm_policy() -> dict[str, Any]:
    return read_json(ELASTICSEARCH / "ilm-policy.json")


def writer_role() -> dict[str, Any]:
    return read_json(ELASTICSEARCH / "logstash-writer-role.json")


def saved_objects() -> list[dict[str, Any]]:
    """Kibana's saved objects, one JSON object a line."""
    objects = []
    for number, line in enumerate(SAVED_OBJECTS.read_text().splitlines(), start=1):
        item = json.loads(line)
        assert isinstance(item, dict), f"line {number} is not an object"
        objects.append(item)
    return objects


def leaves(properties: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(dotted name, mapping) of every mapped field: a typed field, or an object that
    takes new fields dynamically (``dynamic: true``, named as the object)."""
    for key, mapping in properties.items():
        name = f"{prefix}{key}"
        if "properties" in mapping:
            yield from leaves(mapping["properties"], name + ".")
        else:
            yield name, mapping


def mapped_fields() -> dict[str, dict[str, Any]]:
    """Every field the composed template maps, by dotted name, and which component maps it
    (``_component``)."""
    fields: dict[str, dict[str, Any]] = {}
    for name, body in component_templates().items():
        properties = body["template"].get("mappings", {}).get("properties", {})
        for field, mapping in leaves(properties):
            assert field not in fields, f"{field} is mapped by two components"
            fields[field] = {**mapping, "_component": name}
    return fields


def mapping_of(fields: dict[str, dict[str, Any]], name: str) -> str | None:
    """The mapped field that takes the line's field ``name``: itself, or an open object
    above it (flattened, or an object with ``dynamic: true``); None when nothing does."""
    if name in fields:
        return name
    parts = name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        above = ".".join(parts[:end])
        mapping = fields.get(above)
        if mapping is not None and (
            mapping.get("type") in OPEN_TYPES or mapping.get("dynamic") in (True, "true")
        ):
            return above
    return None
