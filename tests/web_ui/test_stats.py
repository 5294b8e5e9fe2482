"""A link's analytics page: totals, the chart drawn on the server, its numbers, the
top lists, bots apart, and a date range."""

from __future__ import annotations

import re

from tests.api.helpers import FIREFOX, GOOGLEBOT, click, ingest
from tests.web_ui.conftest import post_form

RANGE = {"from": "2025-03-01", "to": "2025-03-03"}


def clicked(ada, clean):
    post_form(ada, "/ui/new", {"target": "https://example.com/", "alias": "promo"})
    ingest(
        clean.database_url,
        click("promo", "2025-03-01T10:05:00Z", ref="news.example", visitor="v1"),
        click("promo", "2025-03-01T11:00:00Z", ref="news.example", visitor="v2"),
        click("promo", "2025-03-03T23:59:00Z", ua=FIREFOX, visitor="v3"),
        click("promo", "2025-03-02T09:00:00Z", ua=GOOGLEBOT, visitor="b1"),
        click("promo", "2025-03-04T00:00:00Z", visitor="v9"),  # the day after the range
    )


def test_totals_chart_numbers_and_tops(ada, clean):
    clicked(ada, clean)
    answer = ada.get("/ui/links/promo/stats", params=RANGE)
    assert answer.status_code == 200
    html = answer.text
    totals = re.findall(r"<dt>([^<]+)</dt><dd>(\d+)</dd>", html)
    assert totals == [("Clicks by people", "3"), ("Visitors", "3"), ("Clicks by bots", "1")]
    chart = html.split('<svg class="chart"')[1].split("</svg>")[0]
    assert chart.count('class="people"') == 2  # two days with people's clicks
    assert chart.count('class="bots"') == 1
    assert '<title id="clicks-t">Clicks over time</title>' in html
    assert "3 clicks by people and 1 by bots over 3 buckets" in html
    assert (
        '<td>2025-03-01</td><td class="num">2</td><td class="num">2</td><td class="num">0</td>'
        in html
    )
    assert '<td>news.example</td><td class="num">2</td>' in html
    assert '<td>Direct or unknown</td><td class="num">1</td>' in html
    assert "<td>Firefox</td>" in html
    bots = html.split('id="top-bots"')[1]
    assert '<td>Googlebot</td><td class="num">1</td>' in bots
    assert "style=" not in html  # the policy allows no inline style


def test_hourly_buckets(ada, clean):
    clicked(ada, clean)
    html = ada.get(
        "/ui/links/promo/stats",
        params={"from": "2025-03-01", "to": "2025-03-01", "interval": "hour"},
    ).text
    assert "over 24 buckets" in html
    assert '<td>2025-03-01 10:00 UTC</td><td class="num">1</td>' in html


def test_a_range_the_api_refuses_is_said_on_the_form(ada, clean):
    clicked(ada, clean)
    answer = ada.get(
        "/ui/links/promo/stats",
        params={"from": "2020-01-01", "to": "2025-01-01", "interval": "hour"},
    )
    assert answer.status_code == 422
    assert "at most 2,000 are served" in answer.text
    reversed_range = ada.get(
        "/ui/links/promo/stats", params={"from": "2025-03-05", "to": "2025-03-01"}
    )
    assert reversed_range.status_code == 422
    assert 'id="e-from"' in reversed_range.text
    assert "must be before to" in reversed_range.text


def test_a_date_that_is_no_date_is_said_beside_it(ada, clean):
    clicked(ada, clean)
    answer = ada.get("/ui/links/promo/stats", params={"from": "yesterday"})
    assert answer.status_code == 422
    assert 'id="e-from"' in answer.text
    assert "YYYY-MM-DD" in answer.text
    # The last day there is: its next day overflowed into a 500 (a review).
    answer = ada.get("/ui/links/promo/stats", params={"to": "9999-12-31"})
    assert answer.status_code == 422
    assert 'id="e-to"' in answer.text


def test_no_clicks_yet(ada):
    post_form(ada, "/ui/new", {"target": "https://example.com/", "alias": "quiet"})
    html = ada.get("/ui/links/quiet/stats").text
    assert "over 30 buckets" in html
    assert "No clicks by people in this range." in html


def test_someone_elses_link_has_no_analytics_for_you(ada, settings):
    from starlette.testclient import TestClient

    from shorty.api.app import create_app
    from tests.web_ui.conftest import sign_up

    post_form(ada, "/ui/new", {"target": "https://example.com/", "alias": "private"})
    with TestClient(create_app(settings)) as bob:
        sign_up(bob, "bob@example.com")
        assert bob.get("/ui/links/private/stats").status_code == 404
