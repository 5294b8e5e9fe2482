"""The admin pages: users, link blocks, dead letters."""

from __future__ import annotations

import re

from tests.api.helpers import letters
from tests.helpers import query, scalar
from tests.web_ui.conftest import ADA, ROOT, csrf_of, post_form, sign_up


def test_plain_users_see_no_admin_pages(ada):
    assert "/ui/admin/users" not in ada.get("/ui/links").text
    for path in ["/ui/admin/users", "/ui/admin/dlq", "/ui/admin/users/1"]:
        answer = ada.get(path)
        assert answer.status_code == 403, path
        assert "Admins only" in answer.text


def test_a_plain_user_posting_admin_forms_changes_nothing(ada, clean):
    post_form(ada, "/ui/new", {"target": "https://example.com/", "alias": "mine"})
    answer = post_form(ada, "/ui/links/mine/block", {"reason": "spam"}, page="/ui/links/mine")
    assert answer.status_code == 403
    assert scalar(clean.database_url, "SELECT blocked_reason FROM urls") is None


def test_users_are_found_and_disabled(root, ui, clean):
    sign_up(ui)
    listing = root.get("/ui/admin/users", params={"q": "ADA@"}).text.split("<main", 1)[1]
    assert ADA[0] in listing
    assert ROOT[0] not in listing  # the header names who is signed in; the table, not
    ada_id = scalar(clean.database_url, "SELECT id FROM users WHERE email = $1", ADA[0])
    fields = {"role": "user", "disabled": "on", "rate_limit": "100/hour", "max_links": "0"}
    answer = post_form(root, f"/ui/admin/users/{ada_id}", fields)
    assert answer.headers["location"] == f"/ui/admin/users/{ada_id}?done=saved-user"
    row = query(
        clean.database_url,
        "SELECT disabled, rate_limit, max_links FROM users WHERE id = $1",
        ada_id,
    )[0]
    assert (row["disabled"], row["rate_limit"], row["max_links"]) == (True, "100/hour", 0)
    # Signed out at once, and no login either.
    assert ui.get("/ui/links", follow_redirects=False).status_code == 303
    assert post_form(ui, "/ui/login", {"email": ADA[0], "password": ADA[1]}).status_code == 401
    page = root.get(f"/ui/admin/users/{ada_id}").text
    assert 'value="0"' in page  # a quota of 0 is shown, not taken for "the default"


def test_a_bad_rate_limit_is_said_beside_it(root, ui, clean):
    sign_up(ui)
    ada_id = scalar(clean.database_url, "SELECT id FROM users WHERE email = $1", ADA[0])
    fields = {"role": "user", "rate_limit": "lots", "max_links": ""}
    answer = post_form(root, f"/ui/admin/users/{ada_id}", fields)
    assert answer.status_code == 422
    assert 'id="e-rate_limit"' in answer.text


def test_an_admin_cannot_disable_themselves(root, clean):
    root_id = scalar(clean.database_url, "SELECT id FROM users WHERE email = $1", ROOT[0])
    page = root.get(f"/ui/admin/users/{root_id}").text
    assert "This is you" in page
    answer = post_form(root, f"/ui/admin/users/{root_id}", {"role": "admin", "disabled": "on"})
    assert answer.status_code == 422
    assert "Admins cannot disable or demote themselves." in answer.text
    assert scalar(clean.database_url, "SELECT disabled FROM users WHERE id = $1", root_id) is False


def test_a_blocked_link_cannot_be_turned_back_on_by_its_owner(root, ada, clean):
    post_form(ada, "/ui/new", {"target": "https://example.com/", "alias": "shady"})
    answer = post_form(
        root,
        "/ui/links/shady/block",
        {"reason": "phishing", "note": "Reported twice"},
        page="/ui/links/shady",
    )
    assert answer.headers["location"] == "/ui/links/shady?done=blocked"
    owner = ada.get("/ui/links/shady").text
    assert "Blocked by an admin (phishing): Reported twice." in owner
    assert "/ui/links/shady/enable" not in owner
    assert "/ui/links/shady/disable" not in owner
    # Even a hand-made POST leaves the block as it is.
    post_form(ada, "/ui/links/shady/enable", {}, page="/ui/links/shady")
    assert scalar(clean.database_url, "SELECT blocked_reason FROM urls") == "phishing"
    post_form(root, "/ui/links/shady/unblock", {}, page="/ui/links/shady")
    assert scalar(clean.database_url, "SELECT blocked_reason FROM urls") is None


def test_dead_letters_are_shown_replayed_and_purged(root, clean):
    ids = letters(clean.redis_url, 3)
    page = root.get("/ui/admin/dlq").text
    assert "<strong>3</strong> letters in the stream." in page
    assert "boom 1" in page
    assert "payload 2" in page
    token = csrf_of(page)
    replayed = root.post(
        "/ui/admin/dlq/replay",
        data={"csrf": token, "ids": [ids[0], ids[1]]},
        follow_redirects=False,
    )
    assert replayed.headers["location"] == "/ui/admin/dlq?done=replayed"
    assert "<strong>1</strong> letter in the stream." in root.get("/ui/admin/dlq").text
    confirm = root.get("/ui/admin/dlq/purge-all").text
    assert "deleted for good" in confirm
    purged = post_form(root, "/ui/admin/dlq/purge", {"all": "yes"}, page="/ui/admin/dlq/purge-all")
    assert purged.headers["location"] == "/ui/admin/dlq?done=purged"
    assert "<strong>0</strong> letters in the stream." in root.get("/ui/admin/dlq").text


def test_nothing_chosen_is_said(root, clean):
    letters(clean.redis_url, 1)
    answer = post_form(root, "/ui/admin/dlq/replay", {}, page="/ui/admin/dlq")
    assert answer.status_code == 422
    assert "Tick the letters first." in answer.text
    assert re.search(r"<strong>1</strong>", root.get("/ui/admin/dlq").text)


def test_a_whole_page_of_letters_can_be_ticked(root, clean):
    """Fifty boxes and the token were more fields than a form could hold (a review:
    "Page not found")."""
    ids = letters(clean.redis_url, 60)
    token = csrf_of(root.get("/ui/admin/dlq").text)
    answer = root.post(
        "/ui/admin/dlq/purge", data={"csrf": token, "ids": ids}, follow_redirects=False
    )
    assert answer.headers["location"] == "/ui/admin/dlq?done=purged"
    assert "<strong>0</strong> letters" in root.get("/ui/admin/dlq").text


def test_a_form_that_cannot_be_read_is_a_bad_request(root):
    answer = root.post(
        "/ui/admin/dlq/purge",
        content=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data"},  # no boundary
    )
    assert answer.status_code == 400
    assert "Bad request" in answer.text
