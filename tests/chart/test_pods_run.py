"""The rendered pods run (issue 15): each Shorty container of the default render is
started as a local process with the argv, environment and ports the chart gives it,
and must pass its rendered probe; then a link made through that API is followed on
that redirect service, and the `helm test` pod's container, run against them, must
exit 0 — and not when its redirect Service is wrong.

What stands in for the cluster, and what is therefore not proven here:

- Service names. The pods reach PostgreSQL, Redis and the API by Service name; here
  the host:port a pod would resolve is replaced, in the rendered env value, by the
  test's own server on 127.0.0.1 (after checking it is the name and port of the
  Service the chart renders); for api and redirect, the local process listening on
  the containerPort the Service's targetPort names. Everything else of the value
  stays as rendered.
- PostgreSQL. The test's server (a proxy on 127.0.0.1 to it) with the chart's role
  and password created in it. PGDATABASE is the one value replaced: a fresh
  database per run, since the server may be one given by SHORTY_DATABASE_URL. The
  embedded server trusts local connections, so the password is not checked by it.
- Redis. A redis-server of the test's own, started with ``--requirepass`` and the
  Secret's redis-password, as the chart's Redis is: that password is checked.
- The operator. Against the emulated API server of tests/operator (kmock) with
  the rendered ClusterKopfPeering; its rendered liveness URL must answer.
- Ports are the rendered containerPorts, listened on by the processes' own
  defaults: a port the chart and the program disagree on fails. They are fixed
  ports, so a machine where one is taken skips (fails under CI=true).
"""

from __future__ import annotations

import asyncio
import copy
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import redis

from shorty.embedded import drop_database
from shorty.processes import Child, NotReady
from tests.chart import pods
from tests.chart.render import named, pod_specs, render
from tests.e2e.processes import REDIS_SERVER, call_json, get
from tests.faults import Proxy
from tests.helpers import bearer, free_port

FULLNAME = "demo-shorty"
BIN = Path(sys.executable).parent
READY_WITHIN = 25.0  # seconds: a probe that fails this long fails the test
BROKEN_WITHIN = 4.0  # the mutated pods: twice the good ones' start (~2 s)


def containers() -> dict[str, dict[str, Any]]:
    """Shorty's containers of the default render, by name: the Deployments' (api,
    redirect, worker, operator), the migrations Job's and the init container."""
    found: dict[str, dict[str, Any]] = {}
    for component, spec in pod_specs(render(None)):
        if component in {"api", "redirect", "worker", "operator", "migrations", "test"}:
            found[component] = spec["containers"][0]
        if component == "api":
            (found["init-migrate"],) = spec["initContainers"]
    return found


def local_address(objects: pods.Objects, name: str) -> tuple[str, str]:
    """(the Service's host:port, where the local process of that component listens):
    the containerPort its targetPort names."""
    service = named(objects, "Service", f"{FULLNAME}-{name}")
    (port,) = service["spec"]["ports"]
    listened = pods.probe_port(containers()[name], port["targetPort"])
    return f"{FULLNAME}-{name}:{port['port']}", f"127.0.0.1:{listened}"


def rendered_ports() -> set[int]:
    return {
        int(port["containerPort"])
        for name, container in containers().items()
        for port in container.get("ports", [])
    }


def taken(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))  # noqa: S104 - the services bind there
        except OSError:
            return True
    return False


@dataclass
class Backends:
    """The test's PostgreSQL and Redis where the pods' Services would be."""

    postgres_port: int
    database: str
    redis_port: int
    kubeconfig: Path
    folder: Path

    def wire(self, container: dict[str, Any]) -> dict[str, Any]:
        """The container with each Service host:port its env names replaced by the
        test's server (and PGDATABASE by the run's database)."""
        objects = render(None)
        postgresql = f"{FULLNAME}-postgresql"
        redis_at = f"{FULLNAME}-redis:{pods.service_port(objects, f'{FULLNAME}-redis')}"
        services = dict(local_address(objects, name) for name in ("api", "redirect"))
        wired = copy.deepcopy(container)
        for item in wired.get("env", []):
            if "value" not in item:
                continue
            value = item["value"]
            if item["name"] == "PGHOST":
                assert value == postgresql, value
                item["value"] = "127.0.0.1"
            elif item["name"] == "PGPORT":
                assert value == str(pods.service_port(objects, postgresql)), value
                item["value"] = str(self.postgres_port)
            elif item["name"] == "PGDATABASE":
                item["value"] = self.database
            else:
                value = value.replace(f"@{redis_at}/", f"@127.0.0.1:{self.redis_port}/")
                for at, local in services.items():  # as a URL's authority, or alone
                    value = local if value == at else value.replace(f"//{at}", f"//{local}")
                item["value"] = value
        return wired

    def start(self, name: str, container: dict[str, Any], pod: str | None = None) -> Child:
        wired = self.wire(container)
        env = pods.container_env(wired, render(None), pod or f"{FULLNAME}-{name}-7d9c5-x2x4q")
        if "SHORTY_LIVE_TARGETS" in env:  # the live view's headless Services: the pods here
            env["SHORTY_LIVE_TARGETS"] = re.sub(
                rf"//{FULLNAME}-\w+-metrics:", "//127.0.0.1:", env["SHORTY_LIVE_TARGETS"]
            )
        services = [o["metadata"]["name"] for o in render(None) if o["kind"] == "Service"]
        for value in env.values():
            assert not any(s in value for s in services), f"a Service left unmapped: {value}"
        # The image's ENV (Dockerfile) under the container's own; nothing of the shell.
        process_env = {
            "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "HOME": str(self.folder),
            "KUBECONFIG": str(self.kubeconfig),  # the service account's token, in a pod
            **env,
        }
        return Child(name, pods.argv(wired, env), env=process_env, log=self.folder / f"{name}.log")


def probe(container: dict[str, Any], kind: str) -> tuple[int, str]:
    http = container[kind]["httpGet"]
    return pods.probe_port(container, http["port"]), http["path"]


def wait_probe(child: Child, container: dict[str, Any], within: float) -> None:
    """Until the container's readinessProbe (else its startupProbe) answers 200."""
    kind = "readinessProbe" if "readinessProbe" in container else "startupProbe"
    port, path = probe(container, kind)
    child.wait_ready(lambda: get(port, path, timeout=2)[0] == 200, within)


def stop_all(children: list[Child]) -> list[int]:
    """SIGTERM to all at once (the API and redirect drain for 5 s each), then the codes."""
    for child in children:
        if child.alive:
            child.process.send_signal(signal.SIGTERM)
    return [child.wait(30) for child in children]


def socket_target(admin_url: str) -> int | str:
    """Where the test's PostgreSQL listens: its Unix socket, else its TCP port."""
    parts = urlsplit(admin_url)
    host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
    port = parts.port or 5432
    return f"{host}/.s.PGSQL.{port}" if host.startswith("/") else port


async def make_role_and_database(admin_url: str, user: str, password: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        # The role outlives the run (other databases may be its); its password is reset.
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", user)
        verb = "ALTER" if exists else "CREATE"
        # Identifiers and the alphanumeric password are the chart's: quoted as such.
        await conn.execute(f"{verb} ROLE \"{user}\" LOGIN PASSWORD '{password}'")
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{user}"')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def backends(stack, tmp_path_factory) -> Iterator[Backends]:
    busy = sorted(port for port in rendered_ports() if taken(port))
    if busy:
        message = f"the rendered ports {busy} are taken on this machine"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from tests.operator.kube import FakeKube

    objects = render(None)
    secret = pods.secret_data(named(objects, "Secret", FULLNAME))
    api_env = {item["name"]: item for item in containers()["api"]["env"]}
    user = api_env["PGUSER"]["value"]
    database = f"shorty_chart_{secrets.token_hex(4)}"
    asyncio.run(
        make_role_and_database(stack.admin_url, user, secret["postgres-password"], database)
    )
    folder = tmp_path_factory.mktemp("pods")
    redis_port = free_port()
    command = [str(REDIS_SERVER), "--port", str(redis_port), "--bind", "127.0.0.1"]
    command += ["--requirepass", secret["redis-password"], "--save", "", "--appendonly", "no"]
    command += ["--dir", str(folder)]
    redis_server = Child("redis-server", command, log=folder / "redis.log")
    client = redis.Redis(port=redis_port, password=secret["redis-password"])
    try:
        redis_server.wait_ready(lambda: bool(client.ping()), 10)
        with Proxy(socket_target(stack.admin_url)) as proxy, FakeKube() as kube:
            peering = named(objects, "ClusterKopfPeering", f"{FULLNAME}-operator")
            kube.request("POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering)
            found = Backends(proxy.port, database, redis_port, kube.kubeconfig(folder), folder)
            assert found.start("migrations", containers()["migrations"]).wait(60) == 0
            yield found
    finally:
        client.close()
        redis_server.stop(10)
        asyncio.run(drop_database(stack.admin_url, database))


def test_the_init_container_migrates_after_the_job(backends):
    """The fixture ran the migrations Job's container; the init container finds nothing
    left to do, and exits 0 too."""
    assert backends.start("init-migrate", containers()["init-migrate"]).wait(60) == 0


def helm_test(backends: Backends, run: str, container: dict[str, Any]) -> tuple[int, str]:
    """The `helm test` pod's container run to its end: exit code and output."""
    child = backends.start(f"helm-test-{run}", container)
    code = child.wait(60)
    return code, child.tail()


def redirect_at(container: dict[str, Any], where: str) -> dict[str, Any]:
    broken = copy.deepcopy(container)
    (item,) = [item for item in broken["env"] if item["name"] == "REDIRECT"]
    item["value"] = where
    return broken


def test_every_pod_passes_its_probes_and_a_link_redirects(backends):
    """Then the `helm test` pod passes against them, and fails when its redirect
    Service is wrong: nothing listening there, or the API instead (ready, but it
    redirects nothing)."""
    found = containers()
    started: list[Child] = []
    try:
        for name in ("api", "redirect", "worker", "operator"):
            started.append(child := backends.start(name, found[name]))
            wait_probe(child, found[name], READY_WITHIN)
        for name in ("api", "redirect", "worker"):  # liveness too, on the metrics port
            port, path = probe(found[name], "livenessProbe")
            assert get(port, path)[0] == 200, name
        secret = pods.secret_data(named(render(None), "Secret", FULLNAME))
        api_port, _ = probe(found["api"], "readinessProbe")
        body = {"target": "https://example.com/rendered"}
        status, link = call_json(
            api_port, "POST", "/api/v1/shorten", body, bearer(secret["initial-api-key"])
        )
        assert status == 201, link
        redirect_port, _ = probe(found["redirect"], "readinessProbe")
        status, headers, _ = get(redirect_port, f"/{link['code']}")
        assert (status, headers.get("location")) == (302, "https://example.com/rendered")
        # The operator's key is provisioned by the API with what the operator needs.
        status, _ = call_json(
            api_port, "GET", "/api/v1/urls", None, bearer(secret["operator-api-key"])
        )
        assert status == 200

        code, output = helm_test(backends, "as-rendered", found["test"])
        assert code == 0, output
        assert "-> 302 https://example.com/helm-test/" in output, output
        assert "-> 204" in output, output  # its link deleted
        nowhere = redirect_at(found["test"], f"127.0.0.1:{free_port()}")
        code, output = helm_test(backends, "redirect-nowhere", nowhere)
        assert code != 0, output
        assert "Connection refused" in output, output
        to_api = redirect_at(found["test"], f"{FULLNAME}-api:8000")
        code, output = helm_test(backends, "redirect-to-api", to_api)
        assert code != 0, output
        assert "-> 404" in output, output
    finally:
        codes = stop_all(started)
    assert codes == [0] * len(started), [child.tail() for child in started]


def renamed(container: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    broken = copy.deepcopy(container)
    (item,) = [item for item in broken["env"] if item["name"] == old]
    item["name"] = new
    return broken


def moved(container: dict[str, Any], port: str, number: int) -> dict[str, Any]:
    broken = copy.deepcopy(container)
    (item,) = [item for item in broken["ports"] if item["name"] == port]
    item["containerPort"] = number
    return broken


def wrong_command(container: dict[str, Any]) -> dict[str, Any]:
    broken = copy.deepcopy(container)
    broken["args"] = ["serve", "api-server"]
    return broken


MUTATIONS = {
    "env name": lambda c: renamed(c, "SHORTY_DATABASE_URL", "SHORTY_DB_URL"),
    "dependent var": lambda c: renamed(c, "PGPORT", "PG_PORT"),
    "port": lambda c: moved(c, "http", 8001),
    "probe path": lambda c: {
        **c,
        "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
    },
    "command": wrong_command,
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_a_wrong_name_port_path_or_command_fails(backends, mutation):
    """The same check on a rendered api container with one thing wrong must fail."""
    broken = MUTATIONS[mutation](containers()["api"])
    child = backends.start(f"api-{mutation.replace(' ', '-')}", broken)
    try:
        with pytest.raises(NotReady):
            wait_probe(child, broken, BROKEN_WITHIN)
    finally:
        child.kill()
        child.wait(10)


def test_the_rendered_env_expands_as_kubernetes_does():
    defined = {"A": "1", "B": "two"}
    assert pods.expand("$(A)-$(B)", defined) == "1-two"
    assert pods.expand("$$(A) $(C) $ $x $(A", defined) == "$(A) $(C) $ $x $(A"
    assert pods.expand("a$$b$", defined) == "a$b$"
    # Only variables defined earlier are expanded: the order of env counts.
    container = {"env": [{"name": "X", "value": "$(Y)"}, {"name": "Y", "value": "y"}]}
    assert pods.container_env(container, (), "pod") == {"X": "$(Y)", "Y": "y"}
