"""Pods on an emulated Kubernetes API, for Filebeat's autodiscover (client-go 0.23).

The operator's emulator (tests/operator/kube.py, kmock) with three more things,
each found by running Filebeat 8.1.3 against it:

- ``v1/pods`` and ``v1/nodes`` are served (Filebeat lists and watches both, the
  pods with ``fieldSelector=spec.nodeName=...``, which kmock ignores: every pod
  here is on the one node);
- watch streams answer ``Content-Type: application/json``: client-go refuses
  kmock's ``application/octet-stream`` ("no stream serializers registered");
- ``/api/v1/namespaces`` (listed and watched by Filebeat whatever its config
  says) is answered here: kmock cannot parse that path. The watch ends at once;
  client-go lists again after a backoff, which costs nothing here.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import kmock

from tests.operator.kube import Cluster, FakeKube

NODE = "node-1"
READ_ONLY = ["get", "list", "watch"]


class PodsCluster(Cluster):
    namespaces: set[str]

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.namespaces = set()
        for key, kind, namespaced in (("v1/pods", "Pod", True), ("v1/nodes", "Node", False)):
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, singular=kind.lower(), namespaced=namespaced, verbs=READ_ONLY
            )

    def _serve_watch(self, request: kmock.Request) -> Any:  # type: ignore[override]
        stream = super()._serve_watch(request)
        return kmock.Response(headers={"Content-Type": "application/json"}, payload=stream)

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw.method == "GET" and raw.path.rstrip("/") == "/api/v1/namespaces":
            if raw.query.get("watch") == "true":
                return aiohttp.web.Response(content_type="application/json")
            items = [
                {"metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1"}}
                for name in sorted(self.namespaces)
            ]
            listing = {"kind": "NamespaceList", "apiVersion": "v1", "items": items}
            return aiohttp.web.json_response({**listing, "metadata": {"resourceVersion": "1"}})
        return await super().__call__(raw)


@dataclass(frozen=True)
class Pod:
    """One pod with one running container, as the API server shows it."""

    name: str
    namespace: str
    container: str
    labels: dict[str, str]
    runtime: str = "containerd"  # the containerID's scheme: containerd, cri-o or docker
    owner: str = ""  # a ReplicaSet's name, or none
    image: str = "shorty:dev"

    @property
    def container_id(self) -> str:
        return hashlib.sha256(f"{self.namespace}/{self.name}/{self.container}".encode()).hexdigest()

    @property
    def pod_uid(self) -> str:
        return str(uuid.UUID(bytes=hashlib.sha256(self.name.encode()).digest()[:16]))

    def manifest(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "uid": self.pod_uid,
            "labels": self.labels,
        }
        if self.owner:
            owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": self.owner}
            metadata["ownerReferences"] = [
                {**owner, "uid": f"uid-{self.owner}", "controller": True}
            ]
        status = {
            "name": self.container,
            "image": self.image,
            "imageID": f"{self.image}@sha256:{'0' * 64}",
            "containerID": f"{self.runtime}://{self.container_id}",
            "ready": True,
            "restartCount": 0,
            "started": True,
            "state": {"running": {"startedAt": "2026-12-06T04:00:00Z"}},
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "nodeName": NODE,
                "containers": [{"name": self.container, "image": self.image}],
            },
            "status": {"phase": "Running", "podIP": "10.244.0.7", "containerStatuses": [status]},
        }


class PodsKube(FakeKube):
    cluster_class = PodsCluster

    def __enter__(self) -> PodsKube:
        super().__enter__()
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
        self.request("POST", "/api/v1/nodes", node)
        return self

    def add(self, pod: Pod) -> None:
        assert isinstance(self.cluster, PodsCluster)
        self.cluster.namespaces.add(pod.namespace)
        self.request("POST", f"/api/v1/namespaces/{pod.namespace}/pods", pod.manifest())
