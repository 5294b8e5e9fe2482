"""GET /api/v1/urls/{code}/stats and GET /api/v1/stats/summary, over clicks stored by
the real ingester (so the rollups are the ones the worker writes)."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.helpers import (
    FIREFOX,
    GOOGLEBOT,
    IPHONE,
    at,
    click,
    conforms,
    ingest,
    new_link,
    problem,
)
from tests.helpers import bearer, query, user_with_key


def stats(api, key, code, **params):
    response = api.get(f"/api/v1/urls/{code}/stats", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def summary(api, key, **params):
    response = api.get("/api/v1/stats/summary", params=params, headers=bearer(key))
    assert response.status_code == 200, response.text
    return response.json()


def ranked(*entries):
    return [{"value": v, "clicks": c, "visitors": u} for v, c, u in entries]


def points(*entries):
    return [{"at": a, "clicks": c, "visitors": u} for a, c, u in entries]


MARCH = {"from": "2025-03-01T00:00:00Z", "to": "2025-03-06T00:00:00Z"}


@pytest.fixture
def promo(api, ada, clean):
    """ada's link 'promo' with six clicks from 1 to 5 March 2025 (one a bot's), and two
    just outside that window."""
    new_link(api, ada[1], alias="promo")
    ingest(
        clean.database_url,
        click("promo", "2025-02-28T23:59:59Z", ref="news.example", visitor="v0"),
        click("promo", "2025-03-01T10:05:00Z", ref="news.example", visitor="v1"),
        click("promo", "2025-03-01T10:40:00Z", ref="news.example", visitor="v1"),
        click("promo", "2025-03-01T23:59:00Z", ua=FIREFOX, visitor="v2"),
        click("promo", "2025-03-03T08:00:00Z", ref="blog.example", ua=IPHONE, visitor="v1"),
        click("promo", "2025-03-03T09:00:00Z", ua=GOOGLEBOT, visitor="b1"),
        click("promo", "2025-03-05T12:00:00Z", ref="news.example", ua=FIREFOX, visitor="v3"),
        click("promo", "2025-03-06T00:00:00Z", ref="news.example", visitor="v4"),
    )
    return "promo"


def test_daily_stats_of_a_link(api, ada, promo):
    body = stats(api, ada[1], promo, **MARCH)
    assert body["code"] == "promo"
    assert body["from"] == "2025-03-01T00:00:00Z"
    assert body["to"] == "2025-03-06T00:00:00Z"
    assert body["interval"] == "day"
    assert body["bots"] == "include"
    # v1 comes back on the 3rd: a visitor again that day; twice on the 1st: once.
    assert body["totals"] == {"clicks": 6, "visitors": 5, "bot_clicks": 1}
    assert body["series"] == points(
        ("2025-03-01T00:00:00Z", 3, 2),
        ("2025-03-02T00:00:00Z", 0, 0),
        ("2025-03-03T00:00:00Z", 2, 2),
        ("2025-03-04T00:00:00Z", 0, 0),
        ("2025-03-05T00:00:00Z", 1, 1),
    )
    assert body["referrers"] == ranked(("news.example", 3, 2), ("", 2, 2), ("blog.example", 1, 1))
    assert body["countries"] == ranked(("", 6, 5))  # no GeoIP database: unknown
    assert body["browsers"] == ranked(
        ("Chrome", 2, 1), ("Firefox", 2, 2), ("Googlebot", 1, 1), ("Mobile Safari", 1, 1)
    )
    # Ties go by value, bytewise: upper case before lower case.
    assert body["os"] == ranked(("Linux", 2, 2), ("Windows", 2, 1), ("Other", 1, 1), ("iOS", 1, 1))
    assert body["devices"] == ranked(("Other", 4, 3), ("Spider", 1, 1), ("iPhone", 1, 1))


def test_bots_filter(api, ada, promo):
    people = stats(api, ada[1], promo, bots="exclude", **MARCH)
    assert people["bots"] == "exclude"
    assert people["totals"] == {"clicks": 5, "visitors": 4, "bot_clicks": 1}
    assert [p["clicks"] for p in people["series"]] == [3, 0, 1, 0, 1]
    assert [b["value"] for b in people["browsers"]] == ["Chrome", "Firefox", "Mobile Safari"]
    assert people["referrers"] == ranked(("news.example", 3, 2), ("", 1, 1), ("blog.example", 1, 1))

    bots = stats(api, ada[1], promo, bots="only", **MARCH)
    assert bots["totals"] == {"clicks": 1, "visitors": 1, "bot_clicks": 1}
    assert [p["clicks"] for p in bots["series"]] == [0, 0, 1, 0, 0]
    assert bots["referrers"] == ranked(("", 1, 1))
    assert bots["browsers"] == ranked(("Googlebot", 1, 1))
    assert bots["devices"] == ranked(("Spider", 1, 1))


def test_hourly_series_rounds_the_window_out_to_whole_hours(api, ada, promo):
    body = stats(
        api,
        ada[1],
        promo,
        interval="hour",
        **{"from": "2025-03-01T09:30:00Z"},
        to="2025-03-01T11:10:00+00:00",
    )
    assert body["interval"] == "hour"
    assert body["from"] == "2025-03-01T09:00:00Z"
    assert body["to"] == "2025-03-01T12:00:00Z"
    assert body["series"] == points(
        ("2025-03-01T09:00:00Z", 0, 0),
        ("2025-03-01T10:00:00Z", 2, 1),
        ("2025-03-01T11:00:00Z", 0, 0),
    )
    assert body["totals"] == {"clicks": 2, "visitors": 1, "bot_clicks": 0}


def test_a_day_bucket_counts_the_whole_day_and_offsets_are_honoured(api, ada, promo):
    # 2 March 01:00 at +03:00 is 1 March 22:00 UTC: the 1st is the first bucket, whole.
    body = stats(
        api, ada[1], promo, **{"from": "2025-03-02T01:00:00+03:00"}, to="2025-03-01T23:00:00Z"
    )
    assert body["from"] == "2025-03-01T00:00:00Z"
    assert body["to"] == "2025-03-02T00:00:00Z"
    assert body["series"] == points(("2025-03-01T00:00:00Z", 3, 2))


def test_top_limits_each_list(api, ada, promo):
    body = stats(api, ada[1], promo, top=1, **MARCH)
    assert body["referrers"] == ranked(("news.example", 3, 2))
    assert body["browsers"] == ranked(("Chrome", 2, 1))
    assert body["totals"]["clicks"] == 6  # totals are not cut


def test_visitors_are_summed_daily_uniques(api, ada, clean):
    new_link(api, ada[1], alias="daily")
    ingest(
        clean.database_url,
        click("daily", "2025-04-01T08:00:00Z", visitor="early"),
        click("daily", "2025-04-01T14:00:00Z", visitor="early"),
        click("daily", "2025-04-01T14:30:00Z", visitor="late"),
        click("daily", "2025-04-01T15:00:00Z"),  # no visitor hash: a click, no visitor
        click("daily", "2025-04-02T09:00:00Z", visitor="early"),
    )
    whole = stats(
        api, ada[1], "daily", **{"from": "2025-04-01T00:00:00Z"}, to="2025-04-03T00:00:00Z"
    )
    assert whole["series"] == points(("2025-04-01T00:00:00Z", 4, 2), ("2025-04-02T00:00:00Z", 1, 1))
    # "early" counts once a day, so twice over the two days.
    assert whole["totals"] == {"clicks": 5, "visitors": 3, "bot_clicks": 0}
    # From 14:00 on, "early" was first seen before the window: not a visitor in it.
    afternoon = stats(
        api,
        ada[1],
        "daily",
        interval="hour",
        **{"from": "2025-04-01T14:00:00Z"},
        to="2025-04-01T16:00:00Z",
    )
    assert afternoon["totals"] == {"clicks": 3, "visitors": 1, "bot_clicks": 0}
    assert afternoon["series"] == points(
        ("2025-04-01T14:00:00Z", 2, 1), ("2025-04-01T15:00:00Z", 1, 0)
    )


def test_defaults_are_the_last_30_days_by_day(api, ada, clean):
    new_link(api, ada[1], alias="recent")
    now = datetime.now(UTC)
    ingest(
        clean.database_url,
        click("recent", now - timedelta(hours=1), visitor="a"),
        click("recent", now - timedelta(days=31, hours=1), visitor="b"),
    )
    body = stats(api, ada[1], "recent")
    after = datetime.now(UTC)
    start, end = at(body["from"]), at(body["to"])
    assert (body["interval"], body["bots"]) == ("day", "include")
    assert start.time() == end.time() == datetime.min.time()
    assert now <= end <= after + timedelta(days=1)  # the current day, whole
    assert now - timedelta(days=31) < start <= after - timedelta(days=30)
    assert len(body["series"]) == (end - start).days
    assert body["series"][0]["at"] == body["from"]
    assert body["totals"] == {"clicks": 1, "visitors": 1, "bot_clicks": 0}
    assert len(body["referrers"]) == 1


def test_stats_read_only_the_rollups(api, ada, promo, clean):
    # Retention drops raw clicks; the statistics stay.
    query(clean.database_url, "TRUNCATE clicks")
    assert stats(api, ada[1], promo, **MARCH)["totals"] == {
        "clicks": 6,
        "visitors": 5,
        "bot_clicks": 1,
    }


def test_a_link_without_clicks_has_zeros(api, ada):
    new_link(api, ada[1], alias="quiet")
    body = stats(api, ada[1], "quiet", interval="hour", **MARCH)
    assert len(body["series"]) == 5 * 24
    assert all(p["clicks"] == p["visitors"] == 0 for p in body["series"])
    assert body["totals"] == {"clicks": 0, "visitors": 0, "bot_clicks": 0}
    assert body["referrers"] == body["countries"] == body["browsers"] == []
    assert body["os"] == body["devices"] == []


def test_another_users_link_is_404_and_an_admin_sees_it(api, ada, bob, admin, promo):
    url = "/api/v1/urls/promo/stats"
    problem(api.get(url, headers=bearer(bob[1])), 404, "link-not-found")
    problem(api.get("/api/v1/urls/nothere/stats", headers=bearer(bob[1])), 404, "link-not-found")
    problem(api.get("/api/v1/urls/a.b/stats", headers=bearer(ada[1])), 404, "link-not-found")
    assert stats(api, admin[1], promo, **MARCH)["totals"]["clicks"] == 6


def test_stats_need_the_stats_read_scope(api, ada, promo, clean):
    _, key = user_with_key(clean.database_url, "cy@example.com", scopes=("urls:read",))
    body = problem(api.get("/api/v1/stats/summary", headers=bearer(key)), 403, "insufficient-scope")
    assert "stats:read" in body["detail"]
    problem(api.get("/api/v1/urls/promo/stats", headers=bearer(key)), 403, "insufficient-scope")
    problem(api.get("/api/v1/urls/promo/stats"), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"interval": "week"}, "interval"),
        ({"bots": "maybe"}, "bots"),
        ({"top": "0"}, "top"),
        ({"top": "101"}, "top"),
        ({"top": "ten"}, "top"),
        ({"from": "yesterday"}, "from"),
        ({"from": "1700000000"}, "from"),  # epoch seconds are not RFC 3339
        ({"from": "2025-03-01T00:00:00"}, "from"),  # no time zone
        ({"from": "2025-03-01"}, "from"),
        ({"to": "2025-03-01T00:00:00 01:00"}, "to"),  # an unescaped '+' reads as a space
        ({"from": "1999-12-31T00:00:00Z"}, "from"),
        ({"to": "3000-01-01T00:00:00Z"}, "to"),
        ({"from": "2025-03-02T00:00:00Z", "to": "2025-03-02T00:00:00Z"}, "from"),
        ({"from": "2025-03-03T00:00:00Z", "to": "2025-03-02T00:00:00Z"}, "from"),
        ({"code": "promo"}, "code"),
    ],
)
def test_bad_parameters_are_422(api, ada, promo, params, field):
    for path in ("/api/v1/urls/promo/stats", "/api/v1/stats/summary"):
        body = problem(
            api.get(path, params=params, headers=bearer(ada[1])), 422, "validation-failed"
        )
        assert [error["field"] for error in body["errors"]] == [field]


def test_all_is_only_a_summary_parameter(api, ada, promo):
    response = api.get("/api/v1/urls/promo/stats", params={"all": "true"}, headers=bearer(ada[1]))
    problem(response, 422, "validation-failed")


@pytest.mark.parametrize(
    ("params", "served"),
    [
        # 2,000 hours: 83 days and 8 hours.
        ({"interval": "hour", "from": "2025-01-01T00:00:00Z", "to": "2025-03-25T08:00:00Z"}, True),
        # A minute more reaches into a 2,001st hour.
        ({"interval": "hour", "from": "2025-01-01T00:00:00Z", "to": "2025-03-25T08:01:00Z"}, False),
        ({"interval": "hour", "from": "2025-01-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}, False),
        ({"from": "2020-01-01T00:00:00Z", "to": "2025-06-23T00:00:00Z"}, True),  # 2,000 days
        ({"from": "2020-01-01T00:00:00Z", "to": "2025-06-24T00:00:00Z"}, False),
    ],
)
def test_a_series_has_at_most_2000_points(api, ada, promo, params, served):
    for path in ("/api/v1/urls/promo/stats", "/api/v1/stats/summary"):
        response = api.get(path, params=params, headers=bearer(ada[1]))
        if served:
            assert response.status_code == 200, response.text
            assert len(response.json()["series"]) == 2000
        else:
            body = problem(response, 422, "range-too-large")
            assert "at most 2,000" in body["detail"]


def test_summary_over_the_callers_links(api, ada, bob, clean):
    for alias in ("a-one", "a-two", "a-idle"):
        new_link(api, ada[1], alias=alias)
    new_link(api, bob[1], alias="b-one")
    ingest(
        clean.database_url,
        click("a-one", "2025-05-01T10:00:00Z", ref="news.example", visitor="x"),
        click("a-one", "2025-05-02T10:00:00Z", ref="news.example", visitor="x"),
        click("a-one", "2025-05-02T11:00:00Z", ua=GOOGLEBOT, visitor="bot"),
        *(
            click("a-two", f"2025-05-02T1{n}:00:00Z", ref="blog.example", visitor=f"y{n % 2}")
            for n in range(4)
        ),
        *(click("b-one", "2025-05-01T12:00:00Z", ref="bob.example") for _ in range(5)),
    )
    may = {"from": "2025-05-01T00:00:00Z", "to": "2025-05-04T00:00:00Z"}
    body = summary(api, ada[1], **may)
    assert (body["from"], body["to"], body["interval"]) == (
        "2025-05-01T00:00:00Z",
        "2025-05-04T00:00:00Z",
        "day",
    )
    assert body["all"] is False
    assert body["totals"] == {"links": 2, "clicks": 7, "visitors": 5, "bot_clicks": 1}
    assert body["series"] == points(
        ("2025-05-01T00:00:00Z", 1, 1),
        ("2025-05-02T00:00:00Z", 6, 4),
        ("2025-05-03T00:00:00Z", 0, 0),
    )
    assert body["top_links"] == [
        {
            "code": "a-two",
            "short_url": "https://sho.rt/a-two",
            "target": "https://example.com",
            "clicks": 4,
            "visitors": 2,
        },
        {
            "code": "a-one",
            "short_url": "https://sho.rt/a-one",
            "target": "https://example.com",
            "clicks": 3,
            "visitors": 3,
        },
    ]
    assert body["referrers"] == ranked(("blog.example", 4, 2), ("news.example", 2, 2), ("", 1, 1))
    assert body["countries"] == ranked(("", 7, 5))

    first = summary(api, ada[1], top=1, **may)
    assert [link["code"] for link in first["top_links"]] == ["a-two"]
    assert first["totals"]["links"] == 2  # counted before the cut
    assert summary(api, ada[1], bots="only", **may)["totals"] == {
        "links": 1,
        "clicks": 1,
        "visitors": 1,
        "bot_clicks": 1,
    }
    hourly = summary(api, ada[1], interval="hour", **may)
    assert len(hourly["series"]) == 72
    assert sum(p["clicks"] for p in hourly["series"]) == 7

    assert summary(api, bob[1], **may)["totals"] == {
        "links": 1,
        "clicks": 5,
        "visitors": 0,
        "bot_clicks": 0,
    }


def test_summary_of_every_link_is_for_admins(api, ada, admin, promo):
    own = summary(api, admin[1], **MARCH)
    assert own["all"] is False
    assert own["totals"] == {"links": 0, "clicks": 0, "visitors": 0, "bot_clicks": 0}
    assert own["top_links"] == []
    everyone = summary(api, admin[1], all="true", **MARCH)
    assert everyone["all"] is True
    assert everyone["totals"] == {"links": 1, "clicks": 6, "visitors": 5, "bot_clicks": 1}
    assert [link["code"] for link in everyone["top_links"]] == ["promo"]
    response = api.get("/api/v1/stats/summary", params={"all": "true"}, headers=bearer(ada[1]))
    body = problem(response, 403, "insufficient-scope")
    assert "all=true" in body["detail"]


def test_answers_match_the_openapi_document(api, ada, promo):
    doc = api.get("/api/v1/openapi.json").json()
    path = "/api/v1/urls/{code}/stats"
    conforms(doc, path, "get", api.get("/api/v1/urls/promo/stats", headers=bearer(ada[1])))
    conforms(doc, path, "get", api.get("/api/v1/urls/none/stats", headers=bearer(ada[1])))
    conforms(doc, path, "get", api.get("/api/v1/urls/promo/stats?top=0", headers=bearer(ada[1])))
    conforms(
        doc,
        "/api/v1/stats/summary",
        "get",
        api.get("/api/v1/stats/summary", params=MARCH, headers=bearer(ada[1])),
    )
    parameters = {p["name"] for p in doc["paths"]["/api/v1/stats/summary"]["get"]["parameters"]}
    assert parameters == {"from", "to", "interval", "bots", "top", "all"}
