"""The progress storage reads a handler's record under the name kopf gave it before the
handlers had ids, and drops that name as it writes the new one (no cluster needed)."""

from __future__ import annotations

import json
from typing import Any

import kopf

from shorty_operator.progress import LEGACY_IDS, ProgressStorage

# As an operator of before left a ShortLink whose code was taken (read off a real run).
OLD = "shorty.dev/build_registry._locals_.upsert"
RECORD = {
    "started": "2026-12-05T08:09:59.881437+00:00",
    "delayed": "2026-12-05T08:10:03.018224+00:00",
    "purpose": "create",
    "retries": 3,
    "success": False,
    "failure": False,
    "message": "the code is taken",
}


def body(**annotations: str) -> kopf.Body:
    raw: Any = {"metadata": {"name": "second", "annotations": annotations}}
    return kopf.Body(raw)


def storage() -> ProgressStorage:
    return ProgressStorage(prefix="shorty.dev")


def upsert() -> kopf.HandlerId:
    return kopf.HandlerId("upsert")


def test_the_old_names_are_the_annotations_kopf_wrote_for_the_closures():
    keys = {new: list(storage().make_keys(old)) for new, old in LEGACY_IDS.items()}
    assert keys == {
        "upsert": [OLD],
        "upsert/spec": ["shorty.dev/build_registry._locals_.upsert.spec"],
        "delete": ["shorty.dev/build_registry._locals_.remove"],
    }
    assert list(storage().make_keys(upsert())) == ["shorty.dev/upsert"]


def test_a_record_under_the_old_name_is_read_for_the_new_one():
    old = body(**{OLD: json.dumps(RECORD)})
    assert storage().fetch(key=upsert(), body=old) == RECORD
    other = kopf.HandlerId("resync")  # never had a record: nothing made up
    assert storage().fetch(key=other, body=old) is None


def test_the_new_name_wins_over_the_old():
    newer = {**RECORD, "retries": 4}
    both = body(**{OLD: json.dumps(RECORD), "shorty.dev/upsert": json.dumps(newer)})
    assert storage().fetch(key=upsert(), body=both) == newer


def test_storing_under_the_new_name_drops_the_old():
    old = body(**{OLD: json.dumps(RECORD)})
    patch = kopf.Patch()
    record: Any = {**RECORD, "retries": 4}
    storage().store(key=upsert(), record=record, body=old, patch=patch)
    annotations = dict(patch["metadata"]["annotations"])
    assert annotations[OLD] is None  # a merge patch's "remove"
    assert json.loads(annotations["shorty.dev/upsert"])["retries"] == 4


def test_purging_drops_both_names():
    old = body(**{OLD: json.dumps(RECORD)})
    patch = kopf.Patch()
    storage().purge(key=upsert(), body=old, patch=patch)
    assert dict(patch["metadata"]["annotations"]) == {OLD: None}
