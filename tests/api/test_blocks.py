"""Admin takedowns the owner cannot undo, and permanent redirects without limits
(issue #12, item 5 and "Also decide")."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from shorty.redirect.app import create_app as create_redirect
from tests.api.helpers import problem, shorten
from tests.helpers import bearer, query, scalar, wait_for


@pytest.fixture
def redirects(settings):
    with TestClient(create_redirect(settings), follow_redirects=False) as client:
        yield client


def answers(redirects, code, status):
    wait_for(lambda: redirects.get(f"/{code}").status_code == status, 5, f"{code} -> {status}")


def block(api, admin, code, reason="abuse", note="reported as spam"):
    response = api.put(
        f"/api/v1/admin/urls/{code}/block",
        json={"reason": reason, "note": note},
        headers=bearer(admin[1]),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_owner_sees_a_block_and_cannot_undo_it(api, ada, admin, redirects):
    code = shorten(api, ada[1], "https://example.com/")
    assert redirects.get(f"/{code}").status_code == 302  # cached in every tier now
    blocked = block(api, admin, code)
    assert blocked["blocked"]["reason"] == "abuse"
    answers(redirects, code, 410)  # the LRU hears of it by pub/sub

    seen = api.get(f"/api/v1/urls/{code}", headers=bearer(ada[1])).json()
    assert seen["blocked"] == blocked["blocked"]
    exported = api.get("/api/v1/urls/export.csv", headers=bearer(ada[1])).text
    assert next(csv.DictReader(io.StringIO(exported)))["blocked"] == "abuse"
    # The owner's switches are theirs, the block is not.
    for change in ({"disabled": False}, {"disabled": True}, {"target": "https://example.org/"}):
        response = api.patch(f"/api/v1/urls/{code}", json=change, headers=bearer(ada[1]))
        assert response.status_code == 200
        assert response.json()["blocked"]["reason"] == "abuse"
    problem(
        api.patch(f"/api/v1/urls/{code}", json={"blocked": None}, headers=bearer(ada[1])),
        422,
        "validation-failed",
    )
    problem(
        api.delete(f"/api/v1/admin/urls/{code}/block", headers=bearer(ada[1])),
        403,
        "insufficient-scope",
    )
    assert redirects.get(f"/{code}").status_code == 410


def test_deleting_a_blocked_link_keeps_its_code_blocked(api, ada, admin, redirects, clean):
    """The owner lets go of it; the code stays blocked, so it cannot be made again."""
    code = shorten(api, ada[1], "https://example.com/", alias="spam-me")
    block(api, admin, code, reason="phishing")
    assert api.delete(f"/api/v1/urls/{code}", headers=bearer(ada[1])).status_code == 204
    problem(api.get(f"/api/v1/urls/{code}", headers=bearer(ada[1])), 404, "link-not-found")
    assert scalar(clean.database_url, "SELECT owner_id FROM urls WHERE code = $1", code) is None
    again = api.post(
        "/api/v1/shorten",
        json={"target": "https://example.com/", "alias": "spam-me"},
        headers=bearer(ada[1]),
    )
    problem(again, 409, "alias-taken")
    assert redirects.get(f"/{code}").status_code == 410
    # An admin deletes it for good.
    assert api.delete(f"/api/v1/urls/{code}", headers=bearer(admin[1])).status_code == 204
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 0


def test_a_legal_block_is_451_and_lifting_it_redirects_again(api, ada, admin, redirects):
    code = shorten(api, ada[1], "https://example.com/")
    block(api, admin, code, reason="legal", note="court order 12/34")
    response = redirects.get(f"/{code}")
    assert response.status_code == 451
    assert response.headers["link"] == '<https://sho.rt>; rel="blocked-by"'
    lifted = api.delete(f"/api/v1/admin/urls/{code}/block", headers=bearer(admin[1]))
    assert lifted.json()["blocked"] is None
    answers(redirects, code, 302)


def test_blocked_links_are_their_own_state_in_lists(api, ada, admin):
    blocked = shorten(api, ada[1], "https://example.com/a")
    active = shorten(api, ada[1], "https://example.com/b")
    block(api, admin, blocked)

    def codes(state):
        page = api.get(f"/api/v1/urls?state={state}", headers=bearer(ada[1])).json()
        return [item["code"] for item in page["items"]]

    assert codes("active") == [active]
    assert codes("blocked") == [blocked]


def test_declared_links_cannot_unblock_either(api, admin, clean):
    declared = api.put(
        "/api/v1/refs?ref=k8s:ns/a/1",
        json={"target": "https://example.com/"},
        headers=bearer(admin[1]),
    ).json()
    block(api, admin, declared["code"])
    again = api.put(
        "/api/v1/refs?ref=k8s:ns/a/1",
        json={"target": "https://example.com/", "disabled": False},
        headers=bearer(admin[1]),
    )
    assert again.json()["blocked"]["reason"] == "abuse"
    assert api.delete("/api/v1/refs?ref=k8s:ns/a/1", headers=bearer(admin[1])).status_code == 204
    # The reference is let go of too: declaring it again makes a new link.
    fresh = api.put(
        "/api/v1/refs?ref=k8s:ns/a/1",
        json={"target": "https://example.com/"},
        headers=bearer(admin[1]),
    )
    assert fresh.status_code == 201
    assert fresh.json()["code"] != declared["code"]
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 2


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "because"},
        {},
        {"reason": "abuse", "note": "x" * 501},
        {"reason": "abuse", "x": 1},
    ],
)
def test_bad_blocks_are_422(api, ada, admin, body):
    code = shorten(api, ada[1], "https://example.com/")
    response = api.put(f"/api/v1/admin/urls/{code}/block", json=body, headers=bearer(admin[1]))
    problem(response, 422, "validation-failed")


def test_blocking_an_unknown_code_is_404(api, admin):
    response = api.put(
        "/api/v1/admin/urls/nothere/block", json={"reason": "spam"}, headers=bearer(admin[1])
    )
    problem(response, 404, "link-not-found")


@pytest.mark.parametrize("status", [301, 308])
@pytest.mark.parametrize(
    "limits",
    [
        {"max_clicks": 5},
        {"expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
    ],
)
def test_a_permanent_redirect_takes_no_expiry_or_click_limit(api, ada, clean, status, limits):
    """As the ShortLink CRD says: browsers cache a 301/308, so neither could hold."""
    code = shorten(api, ada[1], "https://example.com/")
    together = api.patch(
        f"/api/v1/urls/{code}", json={"redirect_type": status, **limits}, headers=bearer(ada[1])
    )
    assert "302 or 307" in problem(together, 422, "invalid-redirect-type")["detail"]
    assert api.patch(f"/api/v1/urls/{code}", json=limits, headers=bearer(ada[1])).status_code == 200
    later = api.patch(
        f"/api/v1/urls/{code}", json={"redirect_type": status}, headers=bearer(ada[1])
    )
    problem(later, 422, "invalid-redirect-type")
    declared = api.put(
        "/api/v1/refs?ref=k8s:ns/p/1",
        json={"target": "https://example.com/", "redirect_type": status, **limits},
        headers=bearer(ada[1]),
    )
    problem(declared, 422, "invalid-redirect-type")
    assert scalar(clean.database_url, "SELECT count(*) FROM urls") == 1
    assert query(clean.database_url, "SELECT redirect_type FROM urls")[0][0] == 302
