"""What the session fixture ``live_metrics`` (tests/conftest.py) runs: Shorty's real
processes, a short scripted workload, and one scrape of each metrics port.

`shorty serve api|redirect|worker` and `shorty-operator` (against the emulated
Kubernetes API, kmock) run as production runs them, on a database and a Redis of
their own, each with its metrics on a port of 127.0.0.1. The workload shortens,
follows (GET and HEAD), misses, gets a 404 and a problem from the API, runs into
the redirect's and the API's rate limits, sends a bulk, reads statistics, lets the
worker store the clicks and publish the outbox, and has one ShortLink reconciled.
Then every metrics port is scraped once: ``{component: exposition text}``.

The numbers below are what it did, for the tests that check the values moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from shorty import embedded
from shorty.store import migrate
from tests.e2e.processes import (
    RedisServer,
    Service,
    call_json,
    get,
    sample,
    scrape,
    service_env,
)
from tests.helpers import another_key, bearer, free_port, query, user_with_key, wait_for

COMPONENTS = ("api", "redirect", "worker", "operator")
# The redirect's per-client bucket: REDIRECT_BURST requests pass (no refill to speak
# of), the next one is 429.
REDIRECT_BURST = 6
FOLLOWED = REDIRECT_BURST - 2  # GET redirects, each a click (HEAD and the miss spend the rest)
BULK_ITEMS = 2
POOL_MAX = 4  # SHORTY_DB_POOL_MAX of every service
MISSING_CODE = "no-such-link"
SHORTLINK = "live-metrics"
T = TypeVar("T")


def run(admin_url: str, folder: Path) -> dict[str, str]:
    """Start everything, run the workload, scrape, stop; the expositions."""
    name = f"shorty_live_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(admin_url, name))
    try:
        migrate.upgrade(url)
        with _running(url, folder) as (api, redirect, worker, operator, kube):
            _workload(url, api, redirect, worker, operator, kube)
            return {
                "api": get(api.metrics_port, "/metrics")[2].decode(),
                "redirect": get(redirect.metrics_port, "/metrics")[2].decode(),
                "worker": get(worker.metrics_port, "/metrics")[2].decode(),
                "operator": operator.metrics(),
            }
    finally:
        asyncio.run(embedded.drop_database(admin_url, name))


@contextlib.contextmanager
def _running(url: str, folder: Path) -> Iterator[tuple[Any, ...]]:
    # Imported here: only this fixture needs the emulated cluster.
    from tests.operator.helpers import Operator
    from tests.operator.kube import FakeKube

    _, operator_key = user_with_key(url, "operator@example.com", scopes=("urls:read", "urls:write"))
    redis_server = RedisServer(folder / "redis")
    redis_server.start()
    env = service_env(
        url,
        redis_server.url,
        SHORTY_PUBLIC_URL="https://sho.rt",
        SHORTY_DB_POOL_MAX=str(POOL_MAX),
        SHORTY_REDIRECT_RATE="0.001",
        SHORTY_REDIRECT_BURST=str(REDIRECT_BURST),
    )
    started: list[Any] = []
    try:
        # Side by side, each waiting for its own start (a second or two each); all
        # stopped before the emulated cluster is (the operator watches it).
        with FakeKube() as kube, ThreadPoolExecutor(4) as pool:
            futures: list[Future[Any]] = []
            try:
                api_port = free_port()

                def service(kind: str, port: int | None = None) -> Callable[[], Service]:
                    return lambda: Service(
                        kind, env, folder / f"{kind}.log", port, metrics_port=free_port()
                    )

                def operator() -> Operator:
                    return Operator(kube, f"http://127.0.0.1:{api_port}", operator_key, folder)

                kinds = (service("api", api_port), service("redirect"), service("worker"))
                futures = [pool.submit(_kept(started, make)) for make in (*kinds, operator)]
                yield (*(future.result() for future in futures), kube)
            finally:
                for future in futures:
                    future.exception()  # every start over (a failed one killed itself)
                codes = list(pool.map(lambda child: child.stop(), started))
            assert codes == [0] * len(codes), f"not all stopped cleanly (see the logs): {codes}"
    finally:
        redis_server.stop()


def _kept(started: list[Any], make: Callable[[], T]) -> Callable[[], T]:
    def start() -> T:
        child = make()
        started.append(child)
        return child

    return start


def _workload(url: str, api: Any, redirect: Any, worker: Any, operator: Any, kube: Any) -> None:
    from tests.operator.kube import ready

    user_id, key = user_with_key(url, "live@example.com")
    auth = bearer(key)
    status, link = call_json(
        api.port, "POST", "/api/v1/shorten", {"target": "https://a.example/"}, auth
    )
    assert status == 201, link
    code = link["code"]
    for _ in range(FOLLOWED):
        assert get(redirect.port, f"/{code}")[0] == 302
    assert get(redirect.port, f"/{code}", "HEAD")[0] == 302
    assert get(redirect.port, f"/{MISSING_CODE}")[0] == 404  # the bucket's last token
    assert get(redirect.port, f"/{code}")[0] == 429
    assert call_json(api.port, "GET", f"/api/v1/urls/{MISSING_CODE}", None, auth)[0] == 404
    assert call_json(api.port, "GET", "/api/v1/no-such-route", None, auth)[0] == 404
    items = [{"target": f"https://b.example/{i}"} for i in range(BULK_ITEMS)]
    status, bulk = call_json(api.port, "POST", "/api/v1/urls/bulk", {"items": items}, auth)
    assert status == 200, bulk
    assert bulk["created"] == BULK_ITEMS, bulk
    # A key of its own with a limit of one request a minute: the second is refused.
    tight = another_key(url, user_id)
    query(
        url, "UPDATE api_keys SET rate_limit = '1/minute' WHERE id = (SELECT max(id) FROM api_keys)"
    )
    assert call_json(api.port, "GET", "/api/v1/urls", None, bearer(tight))[0] == 200
    assert call_json(api.port, "GET", "/api/v1/urls", None, bearer(tight))[0] == 429
    kube.apply(
        {
            "apiVersion": "shorty.dev/v1alpha1",
            "kind": "ShortLink",
            "metadata": {"name": SHORTLINK, "namespace": "default"},
            "spec": {"target": "https://c.example/"},
        }
    )

    def ingested() -> bool:
        samples = scrape(worker.metrics_port)
        clicks = sample(samples, "shorty_clicks_ingested_total") or 0
        published = sample(samples, "shorty_outbox_published_total") or 0
        # The shorten, the bulk, the ShortLink's link: each an outbox event.
        return clicks >= FOLLOWED and published >= 1 + BULK_ITEMS + 1

    wait_for(lambda: ready(kube.get(SHORTLINK)).get("status") == "True", 30, "the ShortLink")
    wait_for(ingested, 30, "the worker to store the clicks and publish the events")
    status, stats = call_json(api.port, "GET", f"/api/v1/urls/{code}/stats", None, auth)
    assert status == 200, stats
    # kopf's index sees the status it wrote once the watch brings it back.
    wait_for(
        lambda: operator.sample("shorty_operator_shortlinks", ready="true") >= 1,
        30,
        "the operator to count the ShortLink Ready",
    )
