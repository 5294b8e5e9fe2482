"""An emulated Kubernetes API for the operator's tests: kmock's KubernetesEmulator,
served on 127.0.0.1 from a thread, with the small adapter kopf 1.45 needs from
kmock 0.8 (each found by trying):

- kopf waits for ``v1/namespaces`` in discovery before it starts: it is
  registered, with ``v1/events`` (kopf posts events) and
  ``customresourcedefinitions``; each CRD in ``manifests/crds/`` is served as
  its file says and stored as an object, as ``kubectl apply`` would;
- kmock keeps no ``resourceVersion``, ``uid``, ``generation`` or
  ``creationTimestamp``: ``Cluster._handle`` stamps them on every write (kopf's
  finalizer JSON-patch tests ``resourceVersion``; the status shows
  ``observedGeneration``);
- kmock answers a failed JSON-patch test with 500; a real API server says 422,
  which kopf expects (``_render_error``);
- kopf posts events with ``generateName``; kmock stores objects by name, so a
  name is made up;
- kmock does not validate objects: every ShortLink written here passes through
  ``tests.operator.crd.admit`` (schema, defaults, CEL) first, as a cluster
  would.

The tests talk to it over HTTP as kubectl would, and the operator runs as a
real ``shorty-operator`` process that logs in with a kubeconfig pointing here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import threading
import traceback
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonpatch
import kmock
import yaml
from kmock import action

from shorty_operator.model import ready_condition
from tests.e2e.processes import call_json
from tests.operator.crd import ROOT, admit

API = "/apis/shorty.dev/v1alpha1"
# The emulator shares two cores with the operator, Shorty's services and the suite;
# under that load it has been seen to take over 10 s for one answer.
ANSWER_SECONDS = 30
CRD_API = "/apis/apiextensions.k8s.io/v1"
# kmock matches each request against its reactions by scanning every request it has
# kept, from the first: the cost of a request grows with the history, and over a
# module of operator tests (kopf's watches, timers, status patches) answers took
# over 30 s. The emulator keeps this many; the whole record is ``Cluster.calls``.
KEEP_REQUESTS = 256


class Cluster(kmock.KubernetesEmulator):
    """The emulator, with the object metadata a real API server keeps."""

    _versions = itertools.count(1)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.failures: list[str] = []  # the emulator's own errors (500s a cluster would not give)
        self.calls: list[kmock.Request] = []  # every request, in order (see KEEP_REQUESTS)

    async def _handle(self, request: kmock.Request) -> Any:
        self.calls.append(request)
        del self._requests[:-KEEP_REQUESTS]  # this request, the last, stays for the matching
        try:
            if request.resource is not None:
                self._stamp(request)
            return await super()._handle(request)
        except Exception as exc:
            if not isinstance(exc, kmock.KubernetesError | jsonpatch.JsonPatchTestFailed):
                self.failures.append("".join(traceback.format_exception(exc)))
            raise

    def _stamp(self, request: kmock.Request) -> None:
        version = str(next(self._versions))
        data = request.data
        if request.action == action.CREATE and isinstance(data, dict):
            meta = data.setdefault("metadata", {})
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:8]
            meta.setdefault("namespace", request.namespace)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", _now())
            meta["generation"] = 1
            meta["resourceVersion"] = version
        elif request.action == action.UPDATE and request.name is not None:
            stored = self._stored(request)
            if isinstance(data, list):  # a JSON patch: its test ops see the version before
                data.append({"op": "add", "path": "/metadata/resourceVersion", "value": version})
            elif isinstance(data, dict):
                meta = data.get("metadata") or {}
                meta["resourceVersion"] = version
                if "spec" in data and request.subresource is None and stored is not None:
                    meta["generation"] = int(stored.get("metadata", {}).get("generation", 1)) + 1
                data["metadata"] = meta
        elif request.action == action.DELETE and request.name is not None:
            stored = self._stored(request)
            if stored is not None:  # the deletion's MODIFIED event carries a new version
                stored.patch({"metadata": {"resourceVersion": version}})

    def _stored(self, request: kmock.Request) -> Any:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else obj

    async def _render_error(self, exc: Exception) -> Any:
        if isinstance(exc, jsonpatch.JsonPatchTestFailed | jsonpatch.JsonPatchConflict):
            refusal = kmock.KubernetesError(status=422, reason="Invalid", message=str(exc))
            return await super()._render_error(refusal)
        return await super()._render_error(exc)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


CRDS = ROOT / "manifests" / "crds"
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


def _discover(cluster: Cluster, definition: dict[str, Any]) -> None:
    """Serve a custom resource as the API server does once its CRD is applied."""
    names = definition["spec"]["names"]
    group = definition["spec"]["group"]
    for version in definition["spec"]["versions"]:
        cluster.resources[f"{group}/{version['name']}/{names['plural']}"] = kmock.ResourceInfo(
            kind=names["kind"],
            singular=names["singular"],
            namespaced=definition["spec"]["scope"] == "Namespaced",
            shortnames=names.get("shortNames", []),
            categories=names.get("categories", []),
            verbs=VERBS,
            subresources=list(version.get("subresources", {})),
        )


def _register(cluster: Cluster) -> None:
    for path in sorted(CRDS.glob("*.yaml")):  # kubectl apply -f manifests/crds/
        _discover(cluster, yaml.safe_load(path.read_text()))
    builtin = {
        "v1/namespaces": ("Namespace", False),
        "v1/events": ("Event", True),
        "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    }
    for key, (kind, namespaced) in builtin.items():
        cluster.resources[key] = kmock.ResourceInfo(
            kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=VERBS
        )


class FakeKube:
    """The emulated API server on a thread of its own; synchronous helpers for the tests."""

    cluster_class: type[Cluster] = Cluster  # tests/elk/pods.py serves Pods with a subclass

    def __init__(self) -> None:
        self.url = ""
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self.cluster: Cluster | None = None
        self._thread = threading.Thread(target=self._run, name="fake-kube", daemon=True)

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self.cluster_class() as cluster, kmock.Server(cluster) as server:
            _register(cluster)
            self.cluster = cluster
            self.url = str(server.url).rstrip("/")
            self.port = server.port
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> FakeKube:
        self._thread.start()
        if not self._ready.wait(20) or not self.url:
            raise RuntimeError(f"the emulated API server did not start: {self._failure!r}")
        for path in sorted(CRDS.glob("*.yaml")):  # the CRD objects, as kubectl would apply them
            self.request(
                "POST", f"{CRD_API}/customresourcedefinitions", yaml.safe_load(path.read_text())
            )
        return self

    def kubeconfig(self, folder: Path) -> Path:
        """A kubeconfig that points here (as kind or minikube would write one)."""
        path = folder / "kubeconfig"
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "unused"}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "tester"}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    # kubectl, roughly

    def request(self, method: str, path: str, body: Any = None, patch: str = "") -> Any:
        """One call to the API server: the JSON answer, None for 404, else an error."""
        headers = {"Content-Type": patch} if patch else None
        try:
            status, answer = call_json(self.port, method, path, body, headers, ANSWER_SECONDS)
        except TimeoutError:
            raise AssertionError(
                f"{method} {path}: no answer in {ANSWER_SECONDS} s; the emulator's thread "
                f"was at:\n{self._where()}"
            ) from None
        if status == 404:
            return None
        if status >= 400:
            raise AssertionError(f"{method} {path}: {status} {answer!r:.500}")
        return answer

    def _where(self) -> str:
        """Where the emulator's thread is, and what each of its tasks awaits."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        lines = "".join(traceback.format_stack(frame)) if frame else "(not running)\n"
        if self._loop is not None:
            try:  # read from another thread: good enough for a diagnosis
                tasks = list(asyncio.all_tasks(self._loop))
            except RuntimeError:
                tasks = []
            lines += "".join(f"task {task.get_name()}: {task.get_coro()!r}\n" for task in tasks)
        return lines

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` (a ShortLink) as a cluster would admit it."""
        stored = admit(obj)
        namespace = stored["metadata"].get("namespace", "default")
        created = self.request("POST", f"{API}/namespaces/{namespace}/shortlinks", stored)
        assert created is not None
        return dict(created)

    def get(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        found = self.request("GET", f"{API}/namespaces/{namespace}/shortlinks/{name}")
        return None if found is None else dict(found)

    def edit_spec(self, name: str, changes: dict[str, Any], namespace: str = "default") -> None:
        old = self.get(name, namespace)
        assert old is not None
        new = {**old, "spec": {**old["spec"], **changes}}
        admit(new, old)
        path = f"{API}/namespaces/{namespace}/shortlinks/{name}"
        self.request("PATCH", path, {"spec": changes}, patch="application/merge-patch+json")

    def delete(self, name: str, namespace: str = "default") -> None:
        self.request("DELETE", f"{API}/namespaces/{namespace}/shortlinks/{name}")

    def events(self, namespace: str = "default") -> list[dict[str, Any]]:
        listed = self.request("GET", f"/api/v1/namespaces/{namespace}/events")
        return list((listed or {}).get("items", []))


def ready(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The Ready condition of a ShortLink (empty when there is none yet)."""
    return ready_condition((obj or {}).get("status")) or {}
