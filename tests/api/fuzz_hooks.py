"""Schemathesis hooks for fuzzing Shorty (scripts/fuzz.py, tests/api/test_schemathesis.py).

The credential a run uses must outlive it: a generated `DELETE /keys/{key_id}`,
`PATCH /admin/keys/{key_id}` or `PATCH /admin/users/{user_id}` that names the
run's own key or user (small ids are likely: 1 is the minimum every boundary
test tries) would revoke or rate-limit it, and every later request would be a
401 or 429 that tests nothing. Such a request is sent for another, unused id.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

ELSEWHERE = 2**62  # an id no row has


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    own = {
        "key_id": os.environ.get("SHORTY_FUZZ_OWN_KEY_ID"),
        "user_id": os.environ.get("SHORTY_FUZZ_OWN_USER_ID"),
    }
    for name, value in (case.path_parameters or {}).items():
        if own.get(name) is not None and str(value) == own[name]:
            case.path_parameters[name] = ELSEWHERE
