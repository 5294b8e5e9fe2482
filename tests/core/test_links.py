from datetime import UTC, datetime, timedelta, timezone

import pytest

from shorty.core.errors import CodeImmutable, InvalidExpiry, ReferenceTaken
from shorty.core.links import Link, LinkState, check_expiry, check_redeclaration, differences

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def link(**changes):
    fields = {
        "id": 1,
        "code": "abc1234",
        "target": "https://example.com",
        "owner_id": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Link(**(fields | changes))


def test_plain_link_is_active():
    assert link().state_at(NOW) is LinkState.ACTIVE


def test_expiry_is_exclusive_of_the_instant():
    expiring = link(expires_at=NOW + timedelta(seconds=1))
    assert expiring.state_at(NOW) is LinkState.ACTIVE
    assert expiring.state_at(NOW + timedelta(seconds=1)) is LinkState.EXPIRED


def test_disabled_wins_over_everything():
    assert link(disabled=True, expires_at=NOW).state_at(NOW) is LinkState.DISABLED


def test_click_limit():
    assert link(max_clicks=3, click_count=2).state_at(NOW) is LinkState.ACTIVE
    assert link(max_clicks=3, click_count=3).state_at(NOW) is LinkState.EXHAUSTED


def test_check_expiry():
    later = NOW + timedelta(days=1)
    assert check_expiry(None, NOW) is None
    assert check_expiry(later, NOW) == later
    other_zone = later.astimezone(timezone(timedelta(hours=5)))
    assert check_expiry(other_zone, NOW) == other_zone
    with pytest.raises(InvalidExpiry, match="future"):
        check_expiry(NOW, NOW)
    with pytest.raises(InvalidExpiry, match="time zone"):
        check_expiry(datetime(2030, 1, 1), NOW)
    earlier = NOW - timedelta(days=1)
    assert check_expiry(earlier, NOW, past_ok=True) == earlier  # a link declared expired
    with pytest.raises(InvalidExpiry, match="100 years"):
        check_expiry(NOW + timedelta(days=40_000), NOW, past_ok=True)


def test_a_redeclaration_changes_only_what_differs():
    held = link(target="https://a.example/", tags=("x", "y"), disabled=False)
    same = {"target": "https://a.example/", "tags": ("x", "y"), "disabled": False}
    assert differences(held, same) == {}
    assert differences(held, {**same, "tags": ("y",), "disabled": True}) == {
        "tags": ("y",),
        "disabled": True,
    }


def test_a_redeclaration_keeps_owner_and_code():
    held = link(code="spring", owner_id=7)
    check_redeclaration(held, "r", 7, "spring")
    check_redeclaration(held, "r", None, None)  # no owner to check, no alias asked
    with pytest.raises(ReferenceTaken, match="'r' belongs to another user's link"):
        check_redeclaration(held, "r", 8, None)
    with pytest.raises(CodeImmutable, match="has the code 'spring'; a code never changes"):
        check_redeclaration(held, "r", 7, "autumn")
