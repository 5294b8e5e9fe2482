"""The HTML pages Shorty serves today, in a real browser: what a person following a
link that does not redirect sees (the redirect service's 404 and 410 pages) and the
API's reference (/api/docs). Each renders, and axe-core finds no serious or critical
accessibility violation in it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Stack
from tests.redirect.helpers import add_link
from tests.ui.conftest import serious_violations

GONE = "uipagegone"


@pytest.fixture(scope="module", autouse=True)
def gone_link(stack: Stack) -> None:
    add_link(stack.database_url, GONE, expires_at=datetime.now(UTC) - timedelta(days=1))


@pytest.mark.parametrize(
    ("service", "path", "status", "heading"),
    [
        ("redirect", "/no-such-link", 404, "Link not found"),
        ("redirect", f"/{GONE}", 410, "Link no longer available"),
        ("api", "/api/docs", 200, None),
    ],
)
def test_the_page_renders_and_axe_finds_nothing_serious(
    services, page, service, path, status, heading
):
    answer = page.goto(services[service] + path)
    assert answer is not None
    assert answer.status == status
    assert answer.headers["content-type"].startswith("text/html")
    if heading is not None:
        assert page.locator("h1").inner_text() == heading
    assert serious_violations(page) == []
