"""The web app in Chromium, against `shorty serve api` and `shorty serve redirect` on
live ports with the real PostgreSQL and Redis: what a person does, click by click.
axe-core checks each page as it is reached; each page is also checked at phone width.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui.helpers import DESKTOP, PASSWORD, VISITOR, check, email, sign_up


def test_sign_up_create_copy_follow_edit_delete(services, page):
    api, redirect = services["api"], services["redirect"]
    page.set_viewport_size(DESKTOP)
    sign_up(page, api, email())
    assert page.get_by_role("status").first.inner_text() == "Welcome! Your account is ready."
    check(page)

    page.get_by_role("link", name="New link", exact=True).first.click()
    check(page)
    page.get_by_label("Target URL").fill("https://example.com/start")
    page.get_by_label("Custom code").fill(f"ui-{secrets.token_hex(3)}")
    page.get_by_label("Tags").fill("docs, launch")
    page.get_by_role("button", name="Create link").click()
    page.wait_for_url(re.compile(r"/ui/links/[\w-]+\?done=created$"))
    check(page)
    code = page.url.split("/ui/links/")[1].split("?")[0]
    short = page.get_by_label("Short URL").input_value()
    assert short.endswith("/" + code)
    qr = page.get_by_role("img", name=re.compile("QR code"))
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")

    page.get_by_role("button", name="Copy").click()
    expect(page.locator(".copied").first).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == short

    followed = page.request.get(f"{redirect}/{code}", max_redirects=0, headers=VISITOR)
    assert followed.status == 302
    assert followed.headers["location"] == "https://example.com/start"

    # The click reaches the analytics once the worker has rolled it up (about 2 s).
    page.get_by_role("link", name="Clicks", exact=True).click()
    people = page.locator(".totals dd").first
    for _ in range(40):
        if people.inner_text() == "1":
            break
        page.wait_for_timeout(250)
        page.reload()
    assert people.inner_text() == "1"
    assert page.get_by_role("img", name="Clicks over time").is_visible()
    check(page)
    page.go_back()

    page.get_by_role("link", name="Edit").click()
    check(page)
    page.get_by_label("Target URL").fill("https://example.com/moved")
    page.get_by_label("Title").fill("Moved page")
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url(re.compile(r"\?done=saved$"))
    assert page.get_by_role("heading", level=1).inner_text() == "Moved page"
    followed = page.request.get(f"{redirect}/{code}", max_redirects=0)
    assert followed.headers["location"] == "https://example.com/moved"

    page.get_by_role("link", name="Links", exact=True).click()
    assert page.get_by_role("cell", name="Moved page").is_visible()
    check(page)

    page.goto(f"{api}/ui/links/{code}")
    page.get_by_role("link", name="Delete").click()
    check(page)
    page.get_by_role("button", name="Delete for good").click()
    page.wait_for_url(re.compile(r"/ui/links\?done=deleted$"))
    assert page.get_by_role("status").first.inner_text() == "Link deleted."
    assert page.request.get(f"{redirect}/{code}", max_redirects=0).status == 404


def test_a_refused_field_is_said_beside_it(services, page):
    api = services["api"]
    page.set_viewport_size(DESKTOP)
    sign_up(page, api, email())
    page.goto(api + "/ui/new")
    page.get_by_label("Target URL").fill("https://example.com/")
    page.get_by_label("Custom code").fill("login")
    page.get_by_role("button", name="Create link").click()
    alias = page.get_by_label("Custom code")
    assert alias.get_attribute("aria-invalid") == "true"
    assert "reserved" in page.locator("#e-alias").inner_text()
    assert page.get_by_label("Target URL").input_value() == "https://example.com/"
    check(page)


def test_a_csv_import_with_a_bad_row(services, page, tmp_path: Path):
    api = services["api"]
    page.set_viewport_size(DESKTOP)
    sign_up(page, api, email())
    page.get_by_role("link", name="Import", exact=True).click()
    check(page)
    stem = secrets.token_hex(3)
    csv_file = tmp_path / "links.csv"
    csv_file.write_text(
        "target,alias,tags\n"
        f"https://example.com/1,imp-{stem}-1,docs\n"
        f"javascript:alert(1),imp-{stem}-2,\n"
        f'https://example.com/3,imp-{stem}-3,"a, b"\n'
    )
    page.get_by_label("CSV file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Import").click()
    heading = page.get_by_role("heading", name="2 made, 1 refused")
    assert heading.is_visible()
    rows = page.locator("table.results tbody tr")
    assert rows.count() == 3
    assert "bad" in (rows.nth(1).get_attribute("class") or "")
    assert rows.nth(1).locator(".error").inner_text() != ""
    check(page)
    page.goto(api + "/ui/links")
    assert page.get_by_role("link", name=f"imp-{stem}-3").is_visible()


@pytest.mark.parametrize("path", ["/ui/login", "/ui/nowhere"])
def test_the_public_pages(services, page, path):
    page.set_viewport_size(DESKTOP)
    answer = page.goto(services["api"] + path)
    assert answer is not None
    assert answer.status == (404 if path == "/ui/nowhere" else 200)
    check(page)


def test_the_account_page_changes_the_password(services, page):
    api = services["api"]
    page.set_viewport_size(DESKTOP)
    sign_up(page, api, email())
    page.get_by_role("link", name="Account").click()
    check(page)
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("another good password")
    page.get_by_label("New password again").fill("another good password")
    page.get_by_role("button", name="Change password").click()
    page.wait_for_url(re.compile(r"\?done=password$"))
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/ui/login\?done=logged-out$"))
