"""The admin pages in Chromium: an admin disables a user, who then cannot log in, and
blocks a link, which its owner then cannot turn back on; API keys and analytics
pages pass axe too."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
import redis
from playwright.sync_api import expect

from tests.api.helpers import letters
from tests.conftest import Stack
from tests.helpers import user_with_password
from tests.ui.helpers import DESKTOP, PASSWORD, check, email, sign_up

ADMIN = (f"admin-{secrets.token_hex(3)}@example.com", "an admin's long password")


@pytest.fixture(scope="module", autouse=True)
def admin_account(stack: Stack) -> None:
    user_with_password(stack.database_url, *ADMIN, role="admin")
    client = redis.Redis.from_url(stack.redis_url)
    client.delete("shorty:dlq")
    client.close()
    letters(stack.redis_url, 2)


def log_in(page: Any, api: str, address: str, password: str) -> None:
    page.goto(api + "/ui/login")
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_an_admin_disables_a_user_and_blocks_their_link(services, browser):
    api, redirect = services["api"], services["redirect"]
    owner_context = browser.new_context(bypass_csp=True)
    admin_context = browser.new_context(bypass_csp=True)
    try:
        owner, admin = owner_context.new_page(), admin_context.new_page()
        owner.set_viewport_size(DESKTOP)
        admin.set_viewport_size(DESKTOP)
        address, code = email(), f"blk-{secrets.token_hex(3)}"
        sign_up(owner, api, address)
        owner.goto(api + "/ui/new")
        owner.get_by_label("Target URL").fill("https://example.com/offer")
        owner.get_by_label("Custom code").fill(code)
        owner.get_by_role("button", name="Create link").click()
        owner.wait_for_url(re.compile(r"\?done=created$"))

        log_in(admin, api, ADMIN[0], ADMIN[1])
        admin.wait_for_url(re.compile(r"/ui/links$"))
        admin.goto(f"{api}/ui/links/{code}")
        check(admin)
        admin.get_by_label("Reason").select_option("phishing")
        admin.get_by_label("Note to the owner").fill("Reported as a fake login page")
        admin.get_by_role("button", name="Block this link").click()
        admin.wait_for_url(re.compile(r"\?done=blocked$"))
        assert owner.request.get(f"{redirect}/{code}", max_redirects=0).status == 410

        owner.goto(f"{api}/ui/links/{code}")
        expect(owner.get_by_role("alert")).to_contain_text("Reported as a fake login page")
        assert owner.get_by_role("button", name="Enable").count() == 0
        assert owner.get_by_role("button", name="Disable").count() == 0
        check(owner)

        admin.get_by_role("link", name="Admin").click()
        check(admin)
        admin.get_by_label("Address holds").fill(address)
        admin.get_by_role("button", name="Search").click()
        admin.get_by_role("link", name=address).click()
        check(admin)
        admin.get_by_label("Disabled").check()
        admin.get_by_role("button", name="Save").click()
        admin.wait_for_url(re.compile(r"\?done=saved-user$"))

        owner.reload()
        owner.wait_for_url(re.compile(r"/ui/login\?next="))
        log_in(owner, api, address, PASSWORD)
        expect(owner.get_by_role("alert")).to_have_text("The email or the password is wrong.")
    finally:
        owner_context.close()
        admin_context.close()


def test_the_dead_letters_page(services, page):
    page.set_viewport_size(DESKTOP)
    log_in(page, services["api"], ADMIN[0], ADMIN[1])
    page.goto(services["api"] + "/ui/admin/dlq")
    check(page)
    expect(page.locator(".big-number")).to_have_text("2 letters in the stream.")
    page.get_by_role("checkbox").first.check()
    page.get_by_role("button", name="Purge chosen").click()
    expect(page.locator(".big-number")).to_have_text("1 letter in the stream.")
    page.get_by_role("link", name="Purge all…").click()
    check(page)
    page.get_by_role("button", name="Purge them all").click()
    expect(page.locator(".big-number")).to_have_text("0 letters in the stream.")


def test_the_api_keys_page(services, page):
    page.set_viewport_size(DESKTOP)
    sign_up(page, services["api"], email())
    page.get_by_role("link", name="API keys").click()
    check(page)
    page.get_by_label("Name").fill("deploy script")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key").input_value()
    assert key.startswith("shk_")
    check(page)
    answer = page.request.get(
        services["api"] + "/api/v1/urls", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status == 200
    page.get_by_role("button", name=re.compile("^Revoke key")).click()
    expect(page.get_by_role("status").first).to_contain_text("Key revoked")
    answer = page.request.get(
        services["api"] + "/api/v1/urls", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status == 401
