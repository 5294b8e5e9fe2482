"""The steps of ``shorty elk setup``, in order; each one is a PUT or POST that leaves
the same state when repeated, so the command is safe to run again (every Logstash and
Kibana pod start runs the Elasticsearch part, the chart's hook Job runs it all)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shorty.elk import SetupError
from shorty.elk.endpoint import Answer, Endpoint, Say
from shorty.elk.files import ILM_POLICY, ElasticsearchFiles, SavedObjects
from shorty.elk.lifecycle import Lifecycle, ilm_policy

POLICY = "shorty-logs"
INDEX_TEMPLATE = "shorty-logs"
DATA_STREAMS = "logs-shorty.*-*"
WRITER_ROLE = "shorty_logstash_writer"
LOGSTASH_USER = "shorty_logstash"
KIBANA_SYSTEM_USER = "kibana_system"
DIGEST = "shorty_templates_digest"  # in the index template's _meta


@dataclass(frozen=True)
class Passwords:
    logstash: str = field(repr=False)
    kibana_system: str = field(repr=False)


def cluster_not_ready(answer: Answer) -> str | None:
    status = answer.body.get("status") if isinstance(answer.body, dict) else None
    return None if status in ("green", "yellow") else f"cluster status {status}"


def kibana_not_ready(answer: Answer) -> str | None:
    """Kibana answers 200 once it is not unavailable; it is ready for the import when
    it is available, or degraded with its saved-objects service available."""
    status = answer.body.get("status") if isinstance(answer.body, dict) else None
    if not isinstance(status, dict):
        return f"unexpected status answer: {answer.reason()}"
    overall = (status.get("overall") or {}).get("level")
    saved_objects = ((status.get("core") or {}).get("savedObjects") or {}).get("level")
    if overall == "available" or saved_objects == "available":
        return None
    return answer.reason()


def elasticsearch(
    es: Endpoint, files: ElasticsearchFiles, lifecycle: Lifecycle, passwords: Passwords, say: Say
) -> None:
    """Wait for the cluster, then the ILM policy, the templates, the Logstash writer's
    role and user, and the password Kibana's server logs in with."""
    health = es.call(
        "GET",
        "_cluster/health",
        not_ready=cluster_not_ready,
        what="waiting for cluster status yellow or green",
    )
    say(f"Elasticsearch at {es.url}: cluster {health.body['status']}")
    policy = ilm_policy(files.ilm_policy, lifecycle, ILM_POLICY)
    put(es, f"_ilm/policy/{POLICY}", policy, say)
    say(f"  warm after {lifecycle.warm_after}, deleted after {lifecycle.retention}")
    for name, body in files.component_templates:
        put(es, f"_component_template/{name}", body, say)
    index_template(es, files, say)
    put(es, f"_security/role/{WRITER_ROLE}", files.writer_role, say)
    user = {
        "password": passwords.logstash,
        "roles": [WRITER_ROLE],
        "full_name": "Shorty's Logstash",
        "metadata": {"managed_by": "shorty elk setup"},
    }
    put(es, f"_security/user/{LOGSTASH_USER}", user, say)
    password = {"password": passwords.kibana_system}
    es.call("POST", f"_security/user/{KIBANA_SYSTEM_USER}/_password", password)
    say(f"POST _security/user/{KIBANA_SYSTEM_USER}/_password: done")


def put(es: Endpoint, path: str, body: dict[str, Any], say: Say) -> Answer:
    answer = es.call("PUT", path, body)
    say(f"PUT {path}: {outcome(answer)}")
    return answer


def outcome(answer: Answer) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    created = body.get("created", body.get("role", {}).get("created"))
    return {True: "created", False: "updated"}.get(created, "done")


def index_template(es: Endpoint, files: ElasticsearchFiles, say: Say) -> None:
    """PUT the index template with a digest of every template body in its ``_meta``.
    When that digest differs from the one in place (a template was added or changed),
    existing data streams need a new backing index to take it: the template goes in
    first without the new digest, the streams are rolled over, and only then is the
    digest recorded, so a run cut short in between rolls them over again."""
    path = f"_index_template/{INDEX_TEMPLATE}"
    digest = files.templates_digest()
    previous = es.call("GET", path, accept=(404,))
    found = previous.body.get("index_templates", []) if previous.status == 200 else []
    before = [t.get("index_template", {}).get("_meta", {}).get(DIGEST) for t in found]
    body = dict(files.index_template)
    meta = dict(body.get("_meta", {}))
    if before != [digest]:
        put(es, path, {**body, "_meta": meta}, say)
        roll_over_on_next_write(es, say)
    put(es, path, {**body, "_meta": {**meta, DIGEST: digest}}, say)


def roll_over_on_next_write(es: Endpoint, say: Say) -> None:
    """Lazy rollover (Elasticsearch 8.13+) of Shorty's data streams: each one starts
    a new backing index, with the new mappings, at its next write, and a stream that
    gets no more writes gets no empty index."""
    answer = es.call("GET", f"_data_stream/{DATA_STREAMS}", accept=(404,))
    streams = answer.body.get("data_streams", []) if answer.status == 200 else []
    for stream in streams:
        es.call("POST", f"{stream['name']}/_rollover?lazy=true")
        say(f"POST {stream['name']}/_rollover?lazy=true: rolls over at its next write")
    if not streams:
        say(f"templates changed; no {DATA_STREAMS} data stream to roll over yet")


def kibana(kb: Endpoint, objects: SavedObjects, say: Say) -> None:
    """Wait for Kibana, then import the saved objects, replacing those with the same
    ids (so a re-run, or a newer file, leaves exactly the file's objects)."""
    kb.call(
        "GET", "api/status", not_ready=kibana_not_ready, what="waiting for Kibana to be available"
    )
    say(f"Kibana at {kb.url}: available")
    answer = kb.post_file("api/saved_objects/_import?overwrite=true", objects.name, objects.data)
    body = answer.body if isinstance(answer.body, dict) else {}
    if body.get("success") is not True:
        raise SetupError(import_failure(body, objects))
    say(f"POST api/saved_objects/_import: {body.get('successCount', 0)} saved objects imported")


def import_failure(body: dict[str, Any], objects: SavedObjects) -> str:
    """One line naming each object Kibana did not import, and why."""
    problems = []
    for item in body.get("errors", []):
        title = item.get("meta", {}).get("title") or item.get("title")
        name = f"{item.get('type')} {item.get('id')}" + (f" ({title!r})" if title else "")
        error = item.get("error", {})
        why = error.get("type", "error")
        missing = [f"{ref.get('type')} {ref.get('id')}" for ref in error.get("references", [])]
        if missing:
            why += ": " + ", ".join(missing)
        elif error.get("message"):
            why += f": {error['message']}"
        problems.append(f"{name}: {why}")
    return (
        f"Kibana imported {body.get('successCount', 0)} of {objects.count} saved objects "
        f"from {objects.name}; " + ("; ".join(problems) or f"answer: {body}")
    )
