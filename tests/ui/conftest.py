"""The browser tests: Debian's Chromium (linked at .venv/bin/chromium by
scripts/chromium.py) driven by Playwright, with axe-core (tests/ui/js) injected into
each page opened. Without Chromium they skip with one line naming the package; where
CI=true they fail instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Stack
from tests.e2e.processes import Service, service_env
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = ROOT / ".venv" / "bin" / "chromium"
AXE = Path(__file__).resolve().parent / "js" / "node_modules" / "axe-core" / "axe.min.js"
# TOOLS.md's flags for a headless Chromium here (Playwright gives it a fresh profile).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def _missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI runs the browser tests: `make pytest` installs it as root)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one module. Playwright's synchronous API runs an event loop in this
    thread while it is open, so nothing may call ``asyncio.run`` meanwhile: a module's
    own fixtures that do (writing rows with tests.helpers.query) must come before
    ``page`` in a test's arguments, and the browser closes before the next module."""
    chromium = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if chromium is None:
        _missing("browser tests skipped: Debian's package `chromium` is not installed")
    if not AXE.exists():
        _missing("browser tests skipped: npm `axe-core` not installed (make pytest does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def services(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The redirect service, the API and the worker as processes (`shorty serve`); the
    base URLs of the first two."""
    env = service_env(stack.database_url, stack.redis_url)
    logs: Path = tmp_path_factory.mktemp("ui") / "services.log"
    started: list[Service] = []
    try:
        for kind in ("redirect", "api"):  # each kept as it starts: all stopped below
            started.append(Service(kind, env, logs))
        started.append(Service("worker", env, logs, metrics_port=free_port()))
        yield {s.kind: f"http://127.0.0.1:{s.port}" for s in started if s.kind != "worker"}
    finally:
        for service in started:
            service.stop()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own cookies), allowed to use the clipboard. The pages'
    Content-Security-Policy is bypassed only so that axe-core can be injected (the
    tests of the policy itself read the header)."""
    context = browser.new_context(
        bypass_csp=True, permissions=["clipboard-read", "clipboard-write"]
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def serious_violations(page: Any) -> list[tuple[str, str, list[str]]]:
    """axe-core's serious and critical violations on the page as it is: (rule, impact,
    the elements)."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run()).violations.map("
        "v => [v.id, v.impact, v.nodes.map(n => n.target.join(' '))])"
    )
    return [
        (rule, impact, nodes) for rule, impact, nodes in found if impact in ("serious", "critical")
    ]
