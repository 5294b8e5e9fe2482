import redis

from shorty.cache.links import KEY
from tests.api.test_shorten import problem
from tests.helpers import bearer, query, scalar


def shorten(api, key, **fields):
    response = api.post(
        "/api/v1/shorten", json={"target": "https://example.com", **fields}, headers=bearer(key)
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_metadata_includes_click_count(api, ada, clean):
    created = shorten(api, ada[1], alias="meta")
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
    shorten(api, ada[1], alias="adas-link")
    problem(api.get("/api/v1/urls/adas-link", headers=bearer(bob[1])), 404, "link-not-found")
    problem(api.delete("/api/v1/urls/adas-link", headers=bearer(bob[1])), 404, "link-not-found")
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1


def test_admin_sees_and_deletes_any_link(api, ada, admin):
    shorten(api, ada[1], alias="adas-link")
    assert api.get("/api/v1/urls/adas-link", headers=bearer(admin[1])).status_code == 200
    assert api.delete("/api/v1/urls/adas-link", headers=bearer(admin[1])).status_code == 204


def test_delete_is_204_then_404_and_drops_the_cache(api, ada, clean):
    shorten(api, ada[1], alias="bye")
    cache = redis.Redis.from_url(clean.redis_url)
    cache.set(KEY.format("bye"), b'["https://example.com", 302, null, false]')
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
