"""The per-user link quota (issue #12 item 10): SHORTY_MAX_LINKS_PER_USER, an admin's
per-user override, 403 quota-exceeded on every route that creates a link."""

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from tests.api.helpers import problem
from tests.helpers import bearer, scalar

LINKS = "SELECT count(*) FROM urls WHERE owner_id = $1"


@pytest.fixture
def capped(settings):
    def make(quota):
        return TestClient(create_app(settings.model_copy(update={"max_links_per_user": quota})))

    return make


def shorten(api, key, n=0, **fields):
    return api.post(
        "/api/v1/shorten",
        json={"target": f"https://example.com/{n}", **fields},
        headers=bearer(key),
    )


def set_quota(api, admin, user_id, quota):
    response = api.patch(
        f"/api/v1/admin/users/{user_id}", json={"max_links": quota}, headers=bearer(admin[1])
    )
    assert response.status_code == 200, response.text
    return response.json()


def refused_for_quota(response, limit):
    body = problem(response, 403, "quota-exceeded")
    assert (body["quota"], body["limit"]) == ("links", limit)
    assert f"at most {limit} links" in body["detail"]
    return body


def test_by_default_there_is_no_link_quota(api, ada, clean):
    items = [{"target": f"https://example.com/{i}"} for i in range(300)]
    response = api.post("/api/v1/urls/bulk", json={"items": items}, headers=bearer(ada[1]))
    assert response.json()["created"] == 300
    assert shorten(api, ada[1]).status_code == 201
    assert scalar(clean.database_url, LINKS, ada[0]) == 301


def test_the_global_quota_is_403_quota_exceeded(capped, ada, bob, clean):
    with capped(2) as api:
        assert [shorten(api, ada[1], i).status_code for i in range(2)] == [201, 201]
        refused = shorten(api, ada[1], 2)
        also_alias = shorten(api, ada[1], 3, alias="one-more")
        bobs = shorten(api, bob[1])
    refused_for_quota(refused, 2)
    refused_for_quota(also_alias, 2)
    assert bobs.status_code == 201  # a quota per user
    assert scalar(clean.database_url, LINKS, ada[0]) == 2


@pytest.mark.parametrize(("quota", "own"), [(2, 4), (3, 1), (1, 0)])
def test_an_admin_sets_a_users_own_quota_above_or_below_the_default(
    capped, ada, bob, admin, clean, quota, own
):
    with capped(quota) as api:
        shown = set_quota(api, admin, ada[0], own)
        assert shown["max_links"] == own
        listed = api.get("/api/v1/admin/users", headers=bearer(admin[1])).json()["items"]
        assert {u["email"]: u["max_links"] for u in listed} == {
            "ada@example.com": own,
            "bob@example.com": None,
            "root@example.com": None,
        }
        made = [shorten(api, ada[1], i).status_code for i in range(own)]
        refused = shorten(api, ada[1], own)
        bobs = [shorten(api, bob[1], i).status_code for i in range(quota + 1)]
    assert made == [201] * own
    refused_for_quota(refused, own)
    assert bobs == [201] * quota + [403]  # the others keep the default


def test_null_gives_a_user_the_default_again(capped, ada, admin, clean):
    with capped(3) as api:
        set_quota(api, admin, ada[0], 1)
        assert [shorten(api, ada[1], i).status_code for i in range(2)] == [201, 403]
        assert set_quota(api, admin, ada[0], None)["max_links"] is None
        assert [shorten(api, ada[1], i).status_code for i in range(2, 5)] == [201, 201, 403]
    assert scalar(clean.database_url, "SELECT max_links FROM users WHERE id = $1", ada[0]) is None


def test_each_bulk_item_past_the_quota_fails_on_its_own(capped, ada, clean):
    items = [{"target": f"https://example.com/{i}"} for i in range(5)]
    items[1] = {"target": "ftp://not-counted"}
    with capped(3) as api:
        response = api.post("/api/v1/urls/bulk", json={"items": items}, headers=bearer(ada[1]))
    body = response.json()
    assert response.status_code == 200
    assert (body["created"], body["failed"]) == (3, 2)
    assert [r["status"] for r in body["results"]] == [201, 422, 201, 201, 403]
    quota = body["results"][4]["problem"]
    assert quota["type"].endswith("/quota-exceeded")
    assert (quota["status"], quota["quota"], quota["limit"]) == (403, "links", 3)
    assert scalar(clean.database_url, LINKS, ada[0]) == 3


def test_a_declaration_that_creates_needs_a_place_one_that_changes_does_not(capped, ada, clean):
    with capped(1) as api:

        def declare(ref, target):
            return api.put(
                "/api/v1/refs", params={"ref": ref}, json={"target": target}, headers=bearer(ada[1])
            )

        assert declare("first", "https://example.com/1").status_code == 201
        assert declare("first", "https://example.com/changed").status_code == 200
        refused = declare("second", "https://example.com/2")
    refused_for_quota(refused, 1)
    assert scalar(clean.database_url, LINKS, ada[0]) == 1


def test_deleting_a_link_frees_its_place(capped, ada, admin, clean):
    with capped(1) as api:
        code = shorten(api, ada[1], 1).json()["code"]
        refused_for_quota(shorten(api, ada[1], 2), 1)
        assert api.delete(f"/api/v1/urls/{code}", headers=bearer(ada[1])).status_code == 204
        code = shorten(api, ada[1], 3).json()["code"]
        # A blocked link its owner deletes stays, owned by no one: it is not theirs.
        api.put(
            f"/api/v1/admin/urls/{code}/block", json={"reason": "spam"}, headers=bearer(admin[1])
        )
        assert api.delete(f"/api/v1/urls/{code}", headers=bearer(ada[1])).status_code == 204
        assert shorten(api, ada[1], 4).status_code == 201
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 2


def test_a_logged_in_user_has_the_same_quota(capped, admin, clean):
    credentials = {"email": "eve@example.com", "password": "a long enough password"}
    with capped(5) as api:
        api.post("/api/v1/auth/register", json=credentials)
        user_id = scalar(
            clean.database_url, "SELECT id FROM users WHERE email = $1", credentials["email"]
        )
        token = api.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        set_quota(api, admin, user_id, 1)
        statuses = [shorten(api, token, i).status_code for i in range(2)]
    assert statuses == [201, 403]


@pytest.mark.parametrize("bad", [-1, 2_000_000_001, True, "7", 7.0, 1.5])
def test_a_quota_is_a_whole_number(api, ada, admin, bad):
    response = api.patch(
        f"/api/v1/admin/users/{ada[0]}", json={"max_links": bad}, headers=bearer(admin[1])
    )
    errors = problem(response, 422, "validation-failed")["errors"]
    assert [e["field"] for e in errors] == ["max_links"]
