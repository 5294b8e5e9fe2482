"""The live view and the chaos panel in Chromium, against the three services with
their metrics on, a Redis of this module's own (so it can be stopped), and fault
injection on: the figures move within 3 s of traffic, a stopped Redis shows as
down, and an experiment started from the panel shows and ends by itself."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from shorty.dev import live_targets
from tests.conftest import Stack
from tests.e2e.processes import RedisServer, Service, service_env
from tests.helpers import free_port, user_with_password
from tests.redirect.helpers import add_link
from tests.ui.helpers import DESKTOP, VISITOR, check

ADMIN = ("live-admin@example.com", "an admin's long password")
CODE = "livetraffic"


@pytest.fixture(scope="module", autouse=True)
def live_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder: Path = tmp_path_factory.mktemp("live")
    add_link(stack.database_url, CODE)

    user_with_password(stack.database_url, *ADMIN, role="admin")
    redis_server = RedisServer(folder / "redis")
    redis_server.start()
    env = service_env(stack.database_url, redis_server.url, SHORTY_CHAOS_ENABLED="true")
    ports = {name: free_port() for name in ("api", "redirect", "worker")}
    api_port, redirect_port = free_port(), free_port()
    api, redirect = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{redirect_port}"
    metrics = {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
    api_env = {**env, "SHORTY_LIVE_TARGETS": live_targets(metrics, api, redirect)}
    started: list[Service] = []
    try:
        log = folder / "services.log"
        started.append(Service("redirect", env, log, redirect_port, metrics_port=ports["redirect"]))
        started.append(Service("worker", env, log, metrics_port=ports["worker"]))
        started.append(Service("api", api_env, log, api_port, metrics_port=ports["api"]))
        yield {"api": api, "redirect": redirect, "redis": redis_server}
    finally:
        for service in started:
            service.stop()
        redis_server.kill()


def log_in(page: Any, api: str) -> None:
    page.set_viewport_size(DESKTOP)
    page.goto(api + "/ui/login")
    page.get_by_label("Email").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/links$"))


def figure(page: Any, service: str, label: str) -> Any:
    card = page.locator(f'article[data-service="{service}"]')
    return card.locator("dt", has_text=re.compile(f"^{re.escape(label)}$")).locator("+ dd")


def test_the_live_view_moves_within_3_s_of_traffic(live_stack, page):
    log_in(page, live_stack["api"])
    page.goto(live_stack["api"] + "/ui/admin/live")
    check(page)
    expect(page.locator("#live-state")).to_have_text("Live: connected.")
    assert page.locator("article.service").count() == 3
    sent = time.monotonic()
    for _ in range(30):
        answer = page.request.get(
            f"{live_stack['redirect']}/{CODE}", max_redirects=0, headers=VISITOR
        )
        assert answer.status == 302
    # Within 3 s of the traffic the redirect's card shows its rate.
    page.wait_for_function(
        """() => {
          const card = document.querySelector('article[data-service="redirect"]');
          const dd = [...card.querySelectorAll("dt")].find(t => t.textContent === "Requests/s")
            .nextElementSibling;
          return parseFloat(dd.textContent) > 0;
        }""",
        timeout=3000,
    )
    assert time.monotonic() - sent < 3 + 0.5
    expect(figure(page, "redirect", "Cache hits")).not_to_have_text("—")


def test_a_stopped_redis_shows_as_down(live_stack, page):
    log_in(page, live_stack["api"])
    page.goto(live_stack["api"] + "/ui/admin/live")
    expect(page.locator("#live-state")).to_have_text("Live: connected.")
    redis_server = live_stack["redis"]
    redis_server.stop()
    try:
        api_card = page.locator('article[data-service="api"]')
        expect(api_card.locator(".deps li", has_text="redis")).to_have_text(
            re.compile(r"^redis: down"), timeout=5000
        )
        expect(api_card.locator(".deps li", has_text="redis")).to_have_class("bad")
        expect(
            page.locator('article[data-service="redirect"] .deps li', has_text="redis")
        ).to_have_text(re.compile(r"^redis: down"), timeout=5000)
        check(page)
    finally:
        redis_server.start()
    expect(api_card.locator(".deps li", has_text="redis")).to_have_text(
        re.compile(r"^redis: up"), timeout=10000
    )


def test_a_chaos_experiment_from_the_panel_shows_and_ends_by_itself(live_stack, page):
    log_in(page, live_stack["api"])
    page.goto(live_stack["api"] + "/ui/admin/chaos")
    check(page)
    page.get_by_label("Dependency").select_option("redis")
    page.get_by_label("Kind").select_option("error")
    page.get_by_label("For (seconds)").fill("4")
    page.get_by_label("Share of calls that fail").fill("0.5")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(r"/ui/admin/chaos\?done=chaos-started$"))
    assert page.get_by_role("cell", name="in force").count() == 1
    chaos = page.locator('article[data-service="redirect"] .chaos')
    expect(chaos).to_have_text("Fault injected: redis error", timeout=4000)
    # It ends by itself: the figures say so, and so does the history.
    expect(chaos).to_have_count(0, timeout=8000)
    page.reload()
    assert page.get_by_role("cell", name="in force").count() == 0
    assert page.get_by_role("cell", name="ended").count() >= 1


def test_the_live_snapshot_is_for_admins_only(live_stack, page):
    answer = page.request.get(live_stack["api"] + "/api/v1/admin/live")
    assert answer.status == 401
    body = json.loads(answer.text())
    assert body["type"].endswith("/unauthenticated")
