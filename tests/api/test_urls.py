import base64
import json
import time

import pytest
import redis
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.cache.links import KEY, CachedLink, encode
from tests.api.helpers import new_link, problem
from tests.helpers import bearer, query, scalar, user_with_key


def test_metadata_includes_click_count(api, ada, clean):
    created = new_link(api, ada[1], alias="meta")
    query(clean.database_url, "UPDATE urls SET click_count = 41 WHERE code = 'meta'")
    response = api.get("/api/v1/urls/meta", headers=bearer(ada[1]))
    assert response.status_code == 200
    body = response.json()
    assert body["click_count"] == 41
    assert body["code"] == "meta"
    assert body["short_url"] == "https://sho.rt/meta"
    assert body["created_at"] == created["created_at"]
    assert body["redirect_type"] == 302
    assert body["disabled"] is False


def test_unknown_code_is_404(api, ada):
    body = problem(api.get("/api/v1/urls/nothere", headers=bearer(ada[1])), 404, "link-not-found")
    assert body["detail"] == "No link has the code 'nothere'."


def test_other_users_link_is_404_not_403(api, ada, bob, clean):
    new_link(api, ada[1], alias="adas-link")
    problem(api.get("/api/v1/urls/adas-link", headers=bearer(bob[1])), 404, "link-not-found")
    problem(api.delete("/api/v1/urls/adas-link", headers=bearer(bob[1])), 404, "link-not-found")
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1


def test_admin_sees_and_deletes_any_link(api, ada, admin):
    new_link(api, ada[1], alias="adas-link")
    assert api.get("/api/v1/urls/adas-link", headers=bearer(admin[1])).status_code == 200
    assert api.delete("/api/v1/urls/adas-link", headers=bearer(admin[1])).status_code == 204


def test_delete_is_204_then_404_and_drops_the_cache(api, ada, clean):
    new_link(api, ada[1], alias="bye")
    cache = redis.Redis.from_url(clean.redis_url)
    cache.set(KEY.format("bye"), encode(CachedLink(1, "https://example.com"), time.time() + 300))
    response = api.delete("/api/v1/urls/bye", headers=bearer(ada[1]))
    assert response.status_code == 204
    assert response.content == b""
    assert cache.exists(KEY.format("bye")) == 0
    cache.close()
    problem(api.delete("/api/v1/urls/bye", headers=bearer(ada[1])), 404, "link-not-found")
    problem(api.get("/api/v1/urls/bye", headers=bearer(ada[1])), 404, "link-not-found")


def test_unknown_route_and_method_are_problems(api, ada):
    problem(api.get("/api/v1/nothing", headers=bearer(ada[1])), 404, "not-found")
    problem(api.put("/api/v1/urls/abc", headers=bearer(ada[1])), 405, "method-not-allowed")


@pytest.mark.parametrize("path", ["%00", "a%00b", "a.b", "x" * 65, "caf%C3%A9"])
def test_impossible_codes_are_404_for_get_and_delete(api, ada, path):
    problem(api.get(f"/api/v1/urls/{path}", headers=bearer(ada[1])), 404, "link-not-found")
    problem(api.delete(f"/api/v1/urls/{path}", headers=bearer(ada[1])), 404, "link-not-found")


def test_delete_works_while_redis_is_away(clean, settings_without_redis):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    with TestClient(create_app(settings_without_redis)) as api:
        new_link(api, key, alias="offline")
        assert api.delete("/api/v1/urls/offline", headers=bearer(key)).status_code == 204
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


@pytest.mark.parametrize(
    "position",
    [
        ["2024-01-01T00:00:00+00:00", 99999999999999999999999],  # a review: 500
        ["2024-01-01T00:00:00+00:00", -1],
        ["2024-01-01T00:00:00+00:00", 1e400],
        ["2024-01-01T00:00:00+00:00", "1"],
        ["2024-01-01T00:00:00", 1],  # no zone
        ["9999-99-99", 1],
        [1, 2, 3],
        {"a": 1},
    ],
)
def test_a_cursor_that_is_no_position_is_422(api, ada, position):
    raw = json.dumps(position).replace("Infinity", "1e400").encode()
    cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    response = api.get(f"/api/v1/urls?cursor={cursor}", headers=bearer(ada[1]))
    problem(response, 422, "invalid-cursor")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/v1/urls/{code}", '{"tags": ["\\ud800"]}'),
        ("PATCH", "/api/v1/urls/{code}", '{"title": "a\\udfffb"}'),
        ("PUT", "/api/v1/refs?ref=x", '{"target": "https://example.com/", "tags": ["\\ud800"]}'),
        ("POST", "/api/v1/shorten", '{"target": "https://example.com/", "\\ud800": 1}'),
    ],
)
def test_a_lone_surrogate_is_422_not_a_500(api, ada, method, path, body):
    """JSON can spell a lone surrogate (a review sent one in a tag: 500); no UTF-8 text
    can hold it."""
    code = api.post(
        "/api/v1/shorten", json={"target": "https://example.com/"}, headers=bearer(ada[1])
    ).json()["code"]
    response = api.request(
        method,
        path.format(code=code),
        content=body.encode(),
        headers={**bearer(ada[1]), "Content-Type": "application/json"},
    )
    body = problem(response, 422, "validation-failed")
    assert "lone surrogates" in body["detail"]


def test_shorten_makes_the_whole_link_at_once(api, ada):
    body = {
        "target": "https://example.com/a",
        "alias": "whole",
        "title": "A title",
        "tags": ["Docs", "team"],
        "max_clicks": 5,
        "redirect_type": 307,
        "forward_query": "append",
    }
    response = api.post("/api/v1/shorten", json=body, headers=bearer(ada[1]))
    assert response.status_code == 201, response.text
    made = response.json()
    assert (made["title"], made["tags"], made["max_clicks"]) == ("A title", ["docs", "team"], 5)
    assert (made["redirect_type"], made["forward_query"]) == (307, "append")
    assert api.get("/api/v1/urls/whole", headers=bearer(ada[1])).json() == made


def test_shorten_refuses_a_permanent_redirect_with_a_limit(api, ada, clean):
    body = {"target": "https://example.com/", "redirect_type": 301, "max_clicks": 5}
    response = api.post("/api/v1/shorten", json=body, headers=bearer(ada[1]))
    problem(response, 422, "invalid-redirect-type")
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_links_sorted_by_clicks_page_by_click_count(api, ada, clean):
    for i, clicks in enumerate([5, 9, 0, 9, 3]):
        new_link(api, ada[1], alias=f"link-{i}")
        query(
            clean.database_url,
            "UPDATE urls SET click_count = $1 WHERE code = $2",
            clicks,
            f"link-{i}",
        )
    seen, cursor = [], None
    while True:
        params = {"sort": "clicks", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/urls", params=params, headers=bearer(ada[1])).json()
        seen += [(item["code"], item["click_count"]) for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    # Most clicked first; a tie by id, newest first.
    assert seen == [("link-3", 9), ("link-1", 9), ("link-0", 5), ("link-4", 3), ("link-2", 0)]
    created = api.get("/api/v1/urls", params={"limit": 2}, headers=bearer(ada[1])).json()
    # A cursor of one order is no position in the other.
    mixed = {"sort": "clicks", "cursor": created["next_cursor"]}
    problem(api.get("/api/v1/urls", params=mixed, headers=bearer(ada[1])), 422, "invalid-cursor")


def test_the_disabled_state_lists_links_their_owner_turned_off(api, ada):
    new_link(api, ada[1], alias="is-on")
    new_link(api, ada[1], alias="is-off")
    patch = api.patch("/api/v1/urls/is-off", json={"disabled": True}, headers=bearer(ada[1]))
    assert patch.status_code == 200
    listed = api.get("/api/v1/urls", params={"state": "disabled"}, headers=bearer(ada[1]))
    assert [item["code"] for item in listed.json()["items"]] == ["is-off"]
    active = api.get("/api/v1/urls", params={"state": "active"}, headers=bearer(ada[1]))
    assert [item["code"] for item in active.json()["items"]] == ["is-on"]
