"""The operator's pure parts: reference, desired link, drift, status."""

from datetime import UTC, datetime

import pytest
import yaml

from shorty_operator.model import (
    BACKOFF_MAX,
    POLICY,
    InvalidSpec,
    Reason,
    Retry,
    desired,
    drift,
    external_ref,
    ready,
    retry_delay,
    status,
)
from tests.operator.crd import EXAMPLES, admit

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 22, 9, 5, tzinfo=UTC)


def api_link(**fields):
    """A link as the API answers it (GET /api/v1/urls/{code})."""
    return {
        "code": "spring-sale",
        "short_url": "https://sho.rt/spring-sale",
        "target": "https://shop.example.com/sale?season=spring",
        "created_at": "2026-11-01T00:00:00Z",
        "updated_at": "2026-11-01T00:00:00Z",
        "expires_at": "2027-06-01T00:00:00+00:00",
        "click_count": 42,
        "redirect_type": 307,
        "disabled": False,
        "max_clicks": 100000,
        "title": "Spring sale 2027",
        "tags": ["campaign", "spring", "newsletter"],
        "forward_query": "append",
        **fields,
    }


def campaign_spec():
    return admit(yaml.safe_load((EXAMPLES / "campaign.yaml").read_text()))["spec"]


def test_the_reference_names_namespace_name_and_uid():
    assert external_ref("marketing", "spring-sale", "0a1b") == "k8s:marketing/spring-sale/0a1b"


def test_desired_maps_every_field_with_the_apis_names():
    assert desired(campaign_spec()) == {
        "alias": "spring-sale",
        "target": "https://shop.example.com/sale?season=spring",
        "redirect_type": 307,
        "expires_at": "2027-06-01T00:00:00Z",
        "max_clicks": 100000,
        "tags": ["campaign", "spring", "newsletter"],
        "disabled": False,
        "forward_query": "append",
        "title": "Spring sale 2027",
    }


def test_left_out_fields_take_the_defaults_and_no_alias_is_sent():
    assert desired({"target": "https://e.com/"}) == {
        "target": "https://e.com/",
        "redirect_type": 302,
        "expires_at": None,
        "max_clicks": None,
        "tags": [],
        "disabled": False,
        "forward_query": "off",
        "title": None,
    }


def test_tags_are_kept_the_way_shorty_keeps_them():
    assert desired({"target": "https://e.com/", "tags": [" Ops", "ops", "Team/A"]})["tags"] == [
        "ops",
        "team/a",
    ]


def test_the_target_is_kept_the_way_shorty_keeps_it_so_it_never_looks_drifted():
    spec = {"target": "HTTPS://Shop.EXAMPLE.com:443/Sale"}
    assert desired(spec)["target"] == "https://shop.example.com/Sale"
    held = api_link(target="https://shop.example.com/Sale")
    assert "target" not in drift(desired(spec), held)


@pytest.mark.parametrize(
    "target", ["https://user:secret@e.com/", "https://exa mple.com/", "https://bad_host!/"]
)
def test_a_target_shorty_refuses_is_an_invalid_spec(target):
    with pytest.raises(InvalidSpec):
        desired({"target": target})


@pytest.mark.parametrize("code", ["api", "Health", "metrics"])
def test_a_reserved_code_is_an_invalid_spec(code):
    spec = admit({"spec": {"target": "https://e.com/", "code": code}})["spec"]  # CRD lets it in
    with pytest.raises(InvalidSpec, match="reserved"):
        desired(spec)


def test_no_drift_when_the_link_matches():
    assert drift(desired(campaign_spec()), api_link()) == []


def test_drift_names_what_was_changed_behind_the_operators_back():
    changed = api_link(
        target="https://evil.example/",
        expires_at="2027-06-01T02:00:00+02:00",  # the same instant: not drift
        tags=["campaign"],
        disabled=True,
    )
    assert drift(desired(campaign_spec()), changed) == ["disabled", "tags", "target"]


def test_a_cleared_expiry_or_limit_is_drift():
    assert drift(desired(campaign_spec()), api_link(expires_at=None, max_clicks=None)) == [
        "expires_at",
        "max_clicks",
    ]


def test_ready_is_true_only_when_synced():
    assert ready(Reason.SYNCED, "in sync", 3, T0) == {
        "type": "Ready",
        "status": "True",
        "reason": "Synced",
        "message": "in sync",
        "observedGeneration": 3,
        "lastTransitionTime": "2026-11-22T09:00:00Z",
    }
    for reason in (Reason.CONFLICT, Reason.INVALID_SPEC, Reason.API_UNAVAILABLE):
        assert ready(reason, "no", 3, T0)["status"] == "False"


def test_status_carries_the_link_and_keeps_an_unchanged_conditions_time():
    first = status(ready(Reason.SYNCED, "in sync", 1, T0), link=api_link(), now=T0)
    assert first["code"] == "spring-sale"
    assert first["shortUrl"] == "https://sho.rt/spring-sale"
    assert first["clicks"] == 42
    assert first["lastSyncTime"] == "2026-11-22T09:00:00Z"

    again = status(ready(Reason.SYNCED, "in sync", 2, T1), first, link=api_link(), now=T1)
    assert again["conditions"][0]["lastTransitionTime"] == "2026-11-22T09:00:00Z"
    assert again["observedGeneration"] == 2
    assert again["lastSyncTime"] == "2026-11-22T09:05:00Z"

    down = status(ready(Reason.API_UNAVAILABLE, "refused", 2, T1), again, now=T1)
    assert down["conditions"][0]["lastTransitionTime"] == "2026-11-22T09:05:00Z"
    assert "code" not in down  # what is known stays as it was: the patch leaves it alone


def test_every_reason_has_a_policy_and_only_a_synced_link_is_quiet():
    assert set(POLICY) == set(Reason)
    assert [r for r in Reason if not POLICY[r].warns] == [Reason.SYNCED]
    assert [r for r in Reason if not POLICY[r].timer_checks] == [Reason.INVALID_SPEC]
    assert {r for r in Reason if POLICY[r].retry is Retry.NO} == {
        Reason.SYNCED,
        Reason.INVALID_SPEC,
    }
    assert all(bool(POLICY[r].failure) == (POLICY[r].retry is not Retry.NO) for r in Reason)


def test_a_taken_code_is_retried_steadily_and_an_unavailable_api_with_backoff():
    def delay(reason: Reason, retry: int) -> float | None:
        return retry_delay(reason, retry, steady=30.0, backoff=5.0)

    assert [delay(Reason.CONFLICT, n) for n in (0, 1, 9)] == [30.0, 30.0, 30.0]
    assert [delay(Reason.API_UNAVAILABLE, n) for n in (0, 1, 2, 5)] == [5.0, 10.0, 20.0, 160.0]
    assert delay(Reason.API_UNAVAILABLE, 6) == BACKOFF_MAX == 300.0
    assert delay(Reason.API_UNAVAILABLE, 10_000) == BACKOFF_MAX  # no overflow
    assert delay(Reason.SYNCED, 3) is None
    assert delay(Reason.INVALID_SPEC, 0) is None


def test_an_unavailable_api_is_not_retried_before_its_breaker_lets_a_call_through():
    """A retry while the API's breaker is open would be refused without a call: the
    backoff is stretched to the rest of the cool-down (never shortened by it)."""

    def delay(retry: int, at_least: float) -> float | None:
        return retry_delay(
            Reason.API_UNAVAILABLE, retry, steady=30.0, backoff=0.5, at_least=at_least
        )

    assert [delay(0, 7.5), delay(1, 7.5), delay(5, 7.5)] == [7.5, 7.5, 16.0]
    assert delay(0, 0.0) == 0.5
    assert retry_delay(Reason.CONFLICT, 0, steady=30.0, backoff=0.5, at_least=60.0) == 30.0
