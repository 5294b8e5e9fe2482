"""Shared by the operator's end-to-end tests: the operator as a process, the world it
runs in (the emulated cluster, Shorty's services), and waits on ShortLinks."""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from shorty.processes import Child, NotReady
from tests.e2e.processes import Service, call_json, get
from tests.helpers import bearer, free_port, wait_for
from tests.operator.crd import ROOT
from tests.operator.kube import FakeKube, ready

MANIFESTS = ROOT / "manifests"

TIMER = 1.0  # seconds between the operator's checks of each link, here


class Operator(Child):
    """``shorty-operator`` in a child process, logged in to the emulated cluster; its
    output goes to ``folder/operator.log`` (``log``). Ready (or ``NotReady`` with the
    log's last lines, and killed) once made."""

    def __init__(
        self,
        kube: FakeKube,
        api_url: str,
        key: str,
        folder: Path,
        *args: str,
        peering: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """``args``: more options; ``peering``: take part in kopf's peering under that
        name (else ``--standalone``); ``env``: more variables."""
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kube.kubeconfig(folder)),
            "SHORTY_OPERATOR_API_KEY": key,
            **(env or {}),
        }
        command = [
            sys.executable,
            "-m",
            "shorty_operator",
            "--api-url",
            api_url,
            "--interval",
            str(TIMER),
            "--conflict-retry",
            "1",
            "--backoff",
            "0.5",
            "--liveness",
            f"http://127.0.0.1:{self.liveness_port}/healthz",
            "--metrics-port",
            str(self.metrics_port),
            *(["--peering", peering] if peering else ["--standalone"]),
            *args,
        ]
        super().__init__("shorty-operator", command, env=env, log=folder / "operator.log")
        try:
            self.wait_ready(lambda: get(self.liveness_port, "/healthz")[0] == 200, 30)
        except NotReady:
            self.kill()
            raise

    def metrics(self) -> str:
        return get(self.metrics_port, "/metrics")[2].decode()

    def sample(self, name: str, **labels: str) -> float:
        """One sample of its /metrics (0 when it has none yet)."""
        for family in text_string_to_metric_families(self.metrics()):
            for found in family.samples:
                if found.name == name and found.labels == labels:
                    return float(found.value)
        return 0.0

    def paused(self) -> float:
        """shorty_operator_paused, from its /metrics."""
        (row,) = [r for r in self.metrics().splitlines() if r.startswith("shorty_operator_paused ")]
        return float(row.split()[-1])

    def health(self) -> dict[str, Any]:
        """The liveness endpoint's body (kopf keeps it up to 10 s)."""
        status, _, body = get(self.liveness_port, "/healthz")
        assert status == 200
        return dict(json.loads(body))


@dataclass
class World:
    kube: FakeKube
    api: Service
    redirect: Service
    database_url: str
    key: str
    env: dict[str, str]
    folder: Path
    operator: Operator

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request to the API with the operator's key."""
        return call_json(self.api.port, method, path, body, bearer(self.key))

    def follow(self, code: str) -> tuple[int, str | None]:
        status, headers, _ = get(self.redirect.port, f"/{code}")
        return status, headers.get("location")

    def restart_operator(
        self, *args: str, kill: bool = False, peering: str | None = None, key: str = ""
    ) -> None:
        """Stop the operator (SIGTERM, or SIGKILL) and start it again with ``args``."""
        if kill:
            self.operator.kill()
        else:
            assert self.operator.stop() == 0
        self.operator = Operator(
            self.kube, self.api_url, key or self.key, self.folder, *args, peering=peering
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"


def shortlink(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "shorty.dev/v1alpha1",
        "kind": "ShortLink",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"target": "https://example.com/docs", **spec},
    }


def namespace() -> str:
    return f"ns-{uuid.uuid4().hex[:8]}"


def synced(world: World, name: str, ns: str, **expect: Any) -> dict[str, Any]:
    """Wait until the ShortLink is Ready for its current generation (and its status
    holds ``expect``); return it."""

    def check() -> dict[str, Any] | None:
        obj = world.kube.get(name, ns)
        condition = ready(obj)
        if obj is None or condition.get("reason") != "Synced":
            return None
        status = obj["status"]
        if status.get("observedGeneration") != obj["metadata"]["generation"]:
            return None
        return obj if all(status.get(k) == v for k, v in expect.items()) else None

    return wait_for(check, 30, f"{ns}/{name} to be Ready {expect or ''}")


def reason_is(world: World, name: str, ns: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = world.kube.get(name, ns)
        return obj if ready(obj).get("reason") == reason else None

    return wait_for(check, 30, f"{ns}/{name} to show {reason}")
