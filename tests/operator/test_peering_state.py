"""``PeeringState`` from kopf's peering lines, without a cluster (the end-to-end cases
are in test_peering.py)."""

from __future__ import annotations

from shorty_operator.peering import PAUSED, PeeringState

RESUME = (
    "Resuming operations after the pause. Conflicting operators with the same priority are gone."
)
MISSING = "Keep-alive in 'shorty-operator' cluster-wide: not found."
FOUND = "Keep-alive in 'shorty-operator' cluster-wide: ok."


def paused_metric() -> float:
    return float(PAUSED._value.get())


def test_a_named_peering_waits_then_acts_and_pauses_for_a_peer():
    state = PeeringState("shorty-operator", standalone=False)
    assert (state.state, state.paused, paused_metric()) == ("waiting", True, 1)
    state.follow(RESUME)
    assert (state.state, paused_metric()) == ("active", 0)
    state.follow("Pausing operations in favour of [<Peer dev@laptop: priority=100>].")
    assert state.report()["state"] == "paused"
    assert "dev@laptop" in state.report()["why"]
    assert paused_metric() == 1


def test_a_same_priority_peer_at_a_start_is_a_pause():
    """kopf says only this at a start, while it still holds everything."""
    state = PeeringState("shorty-operator", standalone=False)
    state.follow("Possibly conflicting operators with the same priority: [<Peer x>].")
    assert state.state == "paused"


def test_a_missing_object_then_made_goes_back_to_waiting(caplog):
    state = PeeringState("shorty-operator", standalone=False)
    state.follow(MISSING)
    state.follow(MISSING)  # every keep-alive says it again: one warning
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert state.report()["why"] == "the peering object 'shorty-operator' does not exist"
    state.follow(FOUND)
    assert state.state == "waiting"
    state.follow(RESUME)
    assert state.state == "active"


def test_without_a_name_kopf_never_waits_and_a_missing_default_is_no_warning(caplog):
    state = PeeringState(None, standalone=False)
    assert state.state == "active"
    state.follow(MISSING)
    assert state.state == "active"
    assert not caplog.records
    shown = PeeringState(None, standalone=True).report()
    assert (shown["state"], shown["paused"], shown.get("why")) == ("standalone", False, None)
