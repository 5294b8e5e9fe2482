"""What the browser tests share: a person's browser, an account made through the
sign-up page, and the checks every page passes (axe in both themes, phone width)."""

from __future__ import annotations

import re
import secrets
from typing import Any

from tests.ui.conftest import serious_violations

PASSWORD = "correct horse battery"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
# A person's browser (the test browser's own names itself HeadlessChrome: a bot).
VISITOR = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"}


def email() -> str:
    return f"ui-{secrets.token_hex(4)}@example.com"


def check(page: Any) -> None:
    """No serious accessibility violation in the light theme or the dark one, and
    nothing wider than a phone at phone width."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert serious_violations(page) == [], f"{page.url} ({scheme})"
    page.emulate_media(color_scheme="light")
    page.set_viewport_size(PHONE)
    wide = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    page.set_viewport_size(DESKTOP)
    assert not wide, f"{page.url} scrolls sideways at phone width"


def sign_up(page: Any, api: str, address: str) -> None:
    page.goto(api + "/ui/signup")
    check(page)
    page.get_by_label("Email").fill(address)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/ui/links\?done=signed-up$"))
