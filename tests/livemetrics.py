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

from pathlib import Path

from tests.e2e.processes import call_json, get, sample, scrape
from tests.fleet import Fleet, fleet
from tests.helpers import another_key, bearer, query, user_with_key, wait_for

COMPONENTS = ("api", "redirect", "worker", "operator")
# The redirect's per-client bucket: REDIRECT_BURST requests pass (no refill to speak
# of), the next one is 429.
REDIRECT_BURST = 6
FOLLOWED = REDIRECT_BURST - 2  # GET redirects, each a click (HEAD and the miss spend the rest)
BULK_ITEMS = 2
POOL_MAX = 4  # SHORTY_DB_POOL_MAX of every service
MISSING_CODE = "no-such-link"
SHORTLINK = "live-metrics"


def run(admin_url: str, folder: Path) -> dict[str, str]:
    """Start everything, run the workload, scrape, stop; the expositions."""
    settings = {
        "SHORTY_PUBLIC_URL": "https://sho.rt",
        "SHORTY_DB_POOL_MAX": str(POOL_MAX),
        "SHORTY_REDIRECT_RATE": "0.001",
        "SHORTY_REDIRECT_BURST": str(REDIRECT_BURST),
    }
    with fleet(admin_url, folder, **settings) as running:
        _workload(running)
        return {
            "api": get(running.api.metrics_port, "/metrics")[2].decode(),
            "redirect": get(running.redirect.metrics_port, "/metrics")[2].decode(),
            "worker": get(running.worker.metrics_port, "/metrics")[2].decode(),
            "operator": running.operator.metrics(),
        }


def _workload(running: Fleet) -> None:
    from tests.operator.kube import ready

    url, api, redirect, worker = running.url, running.api, running.redirect, running.worker
    operator, kube = running.operator, running.kube

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
