"""elk/logstash/: the settings, the two pipelines and what they do to Shorty's lines.

No Logstash can run here: the pipelines are parsed with the grammar of Logstash's
configuration language (PyPI ``lscl``), their structure is read from the tree, grok
patterns run with PyPI ``pygrok`` on real plain-text lines (a crashing process's
traceback, a command-line error, a thread dump), and every field the pipelines name
is shown to come from the captured lines, from Filebeat, or from the pipeline itself.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import pytest
import yaml
from lscl.errors import DecodeError
from lscl.lang import LsclSelector

from tests.elk import pipelines as ls
from tests.elk import plaintext
from tests.elk.capture import SERVICES, Captured
from tests.elk.fields import flat, under
from tests.elk.mappings import (
    DATA_STREAMS,
    FILEBEAT_ADDS,
    FILEBEAT_ADDS_TO_TEXT,
    FILEBEAT_DROPS,
    LOGSTASH,
    LOGSTASH_ADDS,
    LOGSTASH_REMOVES,
    template_takes,
)

with warnings.catch_warnings():
    # pygrok's module has regular expressions in plain strings ("\w"): compiled without
    # its .pyc, Python warns about the escapes, which the test run makes errors.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", SyntaxWarning)
    from pygrok import Grok

SETTINGS = yaml.safe_load((LOGSTASH / "logstash.yml").read_text())
PIPELINES = yaml.safe_load((LOGSTASH / "pipelines.yml").read_text())
CONFS = {path.name: path for path in sorted(ls.PIPELINE_DIR.glob("*.conf"))}
TREES = {name: ls.parse(path) for name, path in CONFS.items()}
MAIN, DEAD_LETTER = TREES["main.conf"], TREES["dead-letter.conf"]
CA = "/usr/share/logstash/config/certs/ca.crt"
ROUTES = {
    "shorty-api": "shorty.api",
    "shorty-redirect": "shorty.redirect",
    "shorty-worker": "shorty.worker",
    "shorty-operator": "shorty.operator",
}

# Where each field the pipelines use comes from, when not from the captured lines nor
# from Filebeat (FILEBEAT_ADDS and FILEBEAT_ADDS_TO_TEXT of tests/elk/mappings.py).
FROM_LOGSTASH = {
    "@version": "every Logstash event",
    "@metadata.dead_letter_queue.reason": "dead_letter_queue input: Elasticsearch's answer",
    "@metadata.dead_letter_queue.entry_time": "dead_letter_queue input: when it was refused",
}
# What each pipeline sets, and which of its filters (by id) sets it: finer than
# LOGSTASH_ADDS of tests/elk/mappings.py, and checked to agree with it.
WRITTEN = {
    "main.conf": {
        "log.level": {"dotted-keys", "plain-text-level"},
        "ecs.version": {"dotted-keys"},
        "tags": {"plain-text", "python-traceback"},
        "service.name": {"service-from-container"},
        "error.type": {"python-traceback"},
        "error.message": {"python-traceback", "command-line-error"},
        "error.stack_trace": {"traceback-stack", "thread-stack"},
        "data_stream.dataset": {f"route-{route}" for route in (*SERVICES, "other")},
        "data_stream.type": {"data-stream"},
        "data_stream.namespace": {"data-stream", "namespace"},
        "event.dataset": {"data-stream"},
        **{f"user_agent.{name}": {"user-agent"} for name in ls.USERAGENT_FIELDS},
    },
    "dead-letter.conf": {
        "@metadata.shorty.original": {"original"},
        "@metadata.shorty.message": {"keep-names"},
        "@metadata.shorty.service": {"keep-names"},
        "event.original": {"dead-letter"},
        "event.kind": {"dead-letter"},
        "event.created": {"dead-letter"},
        "error.message": {"dead-letter"},
        "data_stream.type": {"dead-letter"},
        "data_stream.dataset": {"dead-letter"},
        "data_stream.namespace": {"dead-letter"},
        "event.dataset": {"dead-letter"},
        "tags": {"dead-letter"},
        "message": {"message"},
        "service.name": {"service"},
    },
}


# Grammar -----------------------------------------------------------------------------


def test_every_pipeline_parses() -> None:
    assert set(CONFS) == {"main.conf", "dead-letter.conf"}
    for name, tree in TREES.items():
        sections = [section.name for section in tree]
        assert sorted(sections) == ["filter", "input", "output"], name


@pytest.mark.parametrize(
    ("broken", "old", "new"),
    [
        ("a brace missing", "tag_on_failure => []\n    }", "tag_on_failure => []\n"),
        ("a string not closed", '"shorty.other" }', 'shorty.other" }'),
        ("an if without its condition", "if [kubernetes][namespace] {", "if {"),
        ("an option without =>", "port => 5044", "port 5044"),
    ],
)
def test_a_broken_pipeline_does_not_parse(broken: str, old: str, new: str) -> None:
    text = CONFS["main.conf"].read_text()
    assert text.count(old) == 1, broken
    with pytest.raises(DecodeError):
        ls.parse_text(text.replace(old, new))


# Settings and pipelines.yml ------------------------------------------------------------


def test_settings() -> None:
    assert SETTINGS["pipeline.ecs_compatibility"] == "v8"
    assert SETTINGS["api.http.host"] == "127.0.0.1"  # unauthenticated: never off the pod
    assert SETTINGS["api.http.port"] == 9600
    assert SETTINGS["dead_letter_queue.enable"] is True
    assert SETTINGS["queue.type"] == "persisted"
    assert SETTINGS["xpack.monitoring.enabled"] is False
    assert not any(key.startswith("xpack.monitoring.elasticsearch") for key in SETTINGS)
    # Everything on disk lives in the volume the chart mounts at path.data.
    data = SETTINGS["path.data"]
    assert data == "/usr/share/logstash/data"
    assert SETTINGS["path.dead_letter_queue"].startswith(data + "/")
    # Every setting is a literal: the image's entrypoint must not rewrite the file.
    assert not any("${" in str(value) for value in SETTINGS.values())


def test_each_pipeline_file_is_one_pipeline() -> None:
    ids = [pipeline["pipeline.id"] for pipeline in PIPELINES]
    assert ids == ["main", "dead-letter"]
    paths = {pipeline["path.config"] for pipeline in PIPELINES}
    assert paths == {f"{ls.MOUNTED_PIPELINE_DIR}/{name}" for name in CONFS}


# Structure ------------------------------------------------------------------------------


def _routes(tree: list[Any]) -> tuple[dict[str, str], str | None]:
    """The chain of conditions on service.name: value -> dataset, and the else's."""
    for chain in ls.conditions(tree):
        firsts = [condition for condition, _ in chain.conditions]
        if all(
            getattr(c, "first", None) == LsclSelector(names=["service", "name"]) for c in firsts
        ):
            routes = {condition.second: _dataset(branch) for condition, branch in chain.conditions}
            return routes, _dataset(chain.default or [])
    raise AssertionError("no chain of conditions on [service][name]")


def _dataset(branch: list[Any]) -> str | None:
    for plugin in ls.plugins_in("filter", branch):
        dataset = plugin.options.get("replace", {}).get("[data_stream][dataset]")
        if dataset:
            return str(dataset)
    return None


def test_routing_covers_the_four_services(captured: Captured) -> None:
    routes, other = _routes(MAIN)
    assert routes == ROUTES
    assert other == "shorty.other"
    names = {flat(record).get("service.name") for _, record in captured.all_records()}
    assert names == set(ROUTES), "the captured lines name other services than the routes"
    for dataset in [*routes.values(), other]:
        # A data stream's dataset has no "-" (the name's separator) and is lower case.
        assert re.fullmatch(r"[a-z0-9_.]+", dataset), dataset
        assert template_takes(f"logs-{dataset}-default"), dataset
    streams = {f"logs-{dataset}-default" for dataset in [*routes.values(), other]}
    assert streams == set(DATA_STREAMS), "the data streams the other tests know"


def test_namespace_is_a_valid_data_stream_namespace() -> None:
    (plugin,) = [p for p in ls.plugins(MAIN) if p.id == "namespace"]
    assert plugin.options["replace"] == {"[data_stream][namespace]": "%{[kubernetes][namespace]}"}
    target, needle, replacement = plugin.options["gsub"]
    assert target == "[data_stream][namespace]"
    assert plugin.options["lowercase"] == [target]
    for namespace in ("default", "shorty", "shorty-prod", "team-a-logs-2"):
        # mutate applies gsub before lowercase.
        made = re.sub(needle, replacement, namespace).lower()
        assert re.fullmatch(r"[a-z0-9_]{1,100}", made), (namespace, made)
        assert template_takes(f"logs-shorty.api-{made}"), made


@pytest.mark.parametrize("name", ["main.conf", "dead-letter.conf"])
def test_output_writes_data_streams_with_credentials_from_the_environment(name: str) -> None:
    outputs = [p for p in ls.plugins(TREES[name]) if p.section == "output"]
    assert [p.name for p in outputs] == ["elasticsearch"]
    options = outputs[0].options
    assert options["data_stream"] == "true"
    assert options["data_stream_auto_routing"] == "true"
    assert options["manage_template"] == "false"  # templates are `shorty elk setup`'s
    assert options["hosts"] == "${ELASTICSEARCH_HOSTS}"
    assert options["user"] == "shorty_logstash"
    assert options["password"] == "${LOGSTASH_ES_PASSWORD}"
    assert options["ssl_enabled"] == "true"
    assert options["ssl_verification_mode"] == "full"
    assert options["ssl_certificate_authorities"] == [CA]
    # The option names of logstash-output-elasticsearch 12 (Logstash 8.19): the older
    # ones (cacert, ssl, ssl_certificate_verification) are refused there.
    assert not {"cacert", "ssl", "ssl_certificate_verification", "index"} & set(options)


def test_no_geoip() -> None:
    # Redirect lines carry no IP address, and none is looked up here: GeoIP is the
    # worker's, on clicks.
    for name, tree in TREES.items():
        assert "geoip" not in {plugin.name for plugin in ls.plugins(tree)}, name


def test_dead_letter_pipeline_reads_mains_queue() -> None:
    inputs = [p for p in ls.plugins(DEAD_LETTER) if p.section == "input"]
    assert [p.name for p in inputs] == ["dead_letter_queue"]
    options = inputs[0].options
    assert options["path"] == SETTINGS["path.dead_letter_queue"]
    assert options["pipeline_id"] == "main"
    assert options["commit_offsets"] == "true"
    (main,) = [p for p in PIPELINES if p["pipeline.id"] == "main"]
    assert main.get("dead_letter_queue.enable", SETTINGS["dead_letter_queue.enable"]) is True
    # It writes the refused events where nothing it writes can be refused again.
    (marked,) = [p for p in ls.plugins(DEAD_LETTER) if p.id == "dead-letter"]
    stream = {
        k: marked.options["add_field"][f"[data_stream][{k}]"]
        for k in ("type", "dataset", "namespace")
    }
    assert template_takes("{type}-{dataset}-{namespace}".format(**stream)), stream
    (pruned,) = [p for p in ls.plugins(DEAD_LETTER) if p.name == "prune"]
    assert pruned.options["whitelist_names"] == ["^@timestamp$"]


# Grok and the regular expressions of conditions --------------------------------------


@pytest.fixture(scope="module")
def plain_text() -> dict[str, list[str]]:
    return plaintext.produce()


def _grok(grok: ls.GrokFilter) -> list[tuple[Grok, dict[str, str]]]:
    """The filter's patterns with pygrok, each with its capture names' fields."""
    custom = {name: ls.pygrok_definition(regex) for name, regex in grok.definitions.items()}
    compiled = []
    for pattern in grok.patterns:
        translated, names = ls.pygrok_pattern(pattern)
        compiled.append((Grok(translated, custom_patterns=custom), names))
    return compiled


def _match(grok_id: str, text: str) -> dict[str, Any] | None:
    (grok,) = [g for g in ls.groks(MAIN) if g.id == grok_id]
    for compiled, names in _grok(grok):  # break_on_match: the first that matches
        found = compiled.match(text)
        if found is not None:
            return {names[k]: v for k, v in found.items()}
    return None


def test_every_grok_pattern_compiles() -> None:
    groks = [g for tree in TREES.values() for g in ls.groks(tree)]
    assert {g.id for g in groks} == {"python-traceback", "command-line-error"}
    for grok in groks:
        assert len(_grok(grok)) == len(grok.patterns)


@pytest.mark.parametrize(
    ("kind", "error_type", "message"),
    [
        ("zero", "ZeroDivisionError", "division by zero"),
        ("chained", "RuntimeError", "config unreadable"),
        ("bare", "RuntimeError", None),
        ("startup", "ConnectionRefusedError", "[Errno 111] Connection refused"),
    ],
)
def test_traceback_grok_finds_the_exception(
    plain_text: dict[str, list[str]], kind: str, error_type: str, message: str | None
) -> None:
    (event,) = plain_text[kind]
    assert _condition("Traceback").search(event)
    assert _match("python-traceback", event) == {"error.type": error_type, "error.message": message}


@pytest.mark.parametrize(
    ("kind", "message"),
    [("settings", "invalid settings:"), ("usage", "No such option '--no-such-option'.")],
)
def test_command_line_error_grok(plain_text: dict[str, list[str]], kind: str, message: str) -> None:
    matched = [
        found for event in plain_text[kind] if (found := _match("command-line-error", event))
    ]
    assert matched == [{"error.message": message}]
    assert not any(_condition("Traceback").search(event) for event in plain_text[kind])


def test_thread_dump_is_recognised(plain_text: dict[str, list[str]]) -> None:
    (dump,) = plain_text["overran"]
    assert _condition("most recent call first").search(dump)
    # The timer's thread (the current one) and the main thread.
    assert len(re.findall(r"^(?:Current thread|Thread) 0x", dump, re.MULTILINE)) == 2
    assert _match("command-line-error", dump) is None
    assert not _condition("Traceback").search(dump)


def test_patterns_leave_json_lines_alone(captured: Captured) -> None:
    records = [flat(record) for _, record in captured.all_records()]
    # main.conf takes a line without log.level for plain text: every JSON line has one.
    assert all(record.get("log.level") for record in records)
    messages = [str(record.get("message", "")) for record in records]
    assert messages
    for message in messages:
        assert not _condition("Traceback").search(message), message
        assert _match("command-line-error", message) is None, message


def _condition(word: str) -> re.Pattern[str]:
    """The =~ regular expression of main.conf that names ``word``, compiled as Logstash
    (Ruby syntax) reads it: ^ and $ at every line."""
    (source,) = [s for s in ls.condition_regexes(MAIN) if word in s]
    return re.compile(source, re.MULTILINE)


# Fields -------------------------------------------------------------------------------


def _written(tree: list[Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for plugin in ls.plugins(tree):
        for name in ls.writes_of(plugin):
            found.setdefault(name, set()).add(plugin.id)
    return found


@pytest.mark.parametrize("name", ["main.conf", "dead-letter.conf"])
def test_what_each_pipeline_writes_is_listed(name: str) -> None:
    assert _written(TREES[name]) == WRITTEN[name]


def _logged(captured: Captured) -> set[str]:
    """The fields of the captured lines (an empty object carries none a pipeline reads)."""
    return {
        name for _, record in captured.all_records() for name in flat(record, empty_objects=False)
    }


def test_every_field_read_comes_from_somewhere(captured: Captured) -> None:
    written = {name for conf in WRITTEN.values() for name in conf}
    from_filebeat = FILEBEAT_ADDS.keys() | FILEBEAT_ADDS_TO_TEXT.keys()
    known = _logged(captured) | from_filebeat | FROM_LOGSTASH.keys() | written
    everything_used: set[str] = set()
    for name, tree in TREES.items():
        used = ls.reads(tree) | ls.removes(tree)
        # A whole object (remove_field => ["[error]"]) is known when a field under it is.
        unknown = {f for f in used if not any(under(k, f) for k in known)}
        assert unknown == set(), name
        everything_used |= used
    # Nothing Filebeat drops: it never comes.
    dropped = {f for f in everything_used if any(under(f, d) for d in FILEBEAT_DROPS)}
    assert dropped == set()
    # And the list above names nothing the pipelines do not use.
    assert FROM_LOGSTASH.keys() <= everything_used


def test_what_the_pipelines_remove_is_listed() -> None:
    removed = set().union(*(ls.removes(tree) for tree in TREES.values()))
    assert removed == LOGSTASH_REMOVES.keys()


def test_what_the_pipelines_write_is_the_contract(captured: Captured) -> None:
    """WRITTEN and LOGSTASH_ADDS agree: a field a pipeline writes reaches Elasticsearch as
    one the contract has Logstash add, or as one of the lines' own (service.name of a
    plain-text line, message and service.name of a dead letter); and each field the
    contract has Logstash add, a pipeline writes."""
    written = {
        name
        for conf in WRITTEN.values()
        for name in conf
        if not name.startswith("@metadata.")  # never indexed
    }
    stray = written - LOGSTASH_ADDS.keys() - _logged(captured)
    assert not stray, f"written, but neither in LOGSTASH_ADDS nor in the lines: {sorted(stray)}"
    unwritten = LOGSTASH_ADDS.keys() - written
    assert not unwritten, f"in LOGSTASH_ADDS, but no pipeline writes it: {sorted(unwritten)}"


def test_written_fields_are_ecs(ecs_fields: dict[str, dict[str, Any]]) -> None:
    for conf in WRITTEN.values():
        for name in conf:
            if not name.startswith(("@metadata.", "shorty.")):
                assert name in ecs_fields, name
    kinds = {v["name"] for v in ecs_fields["event.kind"]["allowed_values"]}
    (marked,) = [p for p in ls.plugins(DEAD_LETTER) if p.id == "dead-letter"]
    assert marked.options["add_field"]["[event][kind]"] in kinds
