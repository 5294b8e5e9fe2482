"""The world of the operator's end-to-end tests: one per test module."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import pytest

from shorty import embedded
from shorty.embedded import drop_database
from shorty.store import migrate
from tests.e2e.processes import RedisServer, Service, service_env
from tests.helpers import user_with_key
from tests.operator.helpers import Operator, World
from tests.operator.kube import FakeKube


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("operator")
    name = f"shorty_op_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    migrate.upgrade(url)
    _, key = user_with_key(url, "operator@example.com", scopes=("urls:read", "urls:write"))
    redis_server = RedisServer(folder / "redis")
    redis_server.start()
    env = service_env(url, redis_server.url, SHORTY_PUBLIC_URL="https://sho.rt")
    services: list[Service] = []
    try:
        services.append(api := Service("api", env, folder / "api.log"))
        services.append(redirect := Service("redirect", env, folder / "redirect.log"))
        services.append(Service("worker", env, folder / "worker.log"))
        with FakeKube() as kube:
            operator = Operator(kube, f"http://127.0.0.1:{api.port}", key, folder)
            world = World(kube, api, redirect, url, key, env, folder, operator)
            try:
                yield world
            finally:
                services[0] = world.api  # restarted by a test
                assert world.operator.stop() == 0
                assert kube.cluster is not None
                assert not kube.cluster.failures, "\n".join(kube.cluster.failures)
    finally:
        for service in services:
            service.stop()
        redis_server.stop()
        asyncio.run(drop_database(stack.admin_url, name))
