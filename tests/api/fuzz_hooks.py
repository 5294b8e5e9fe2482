"""Schemathesis hooks for fuzzing Shorty (scripts/fuzz.py, tests/api/test_schemathesis.py).

The credential a run uses must outlive it: a generated `DELETE /keys/{key_id}`,
`PATCH /admin/keys/{key_id}` or `PATCH /admin/users/{user_id}` that names the
run's own key or user (small ids are likely: 1 is the minimum every boundary
test tries) would revoke or rate-limit it, and every later request would be a
401 or 429 that tests nothing. Such a request is sent for another, unused id.
"""

from __future__ import annotations

import os
import re
import zlib
from typing import Any

import schemathesis

ELSEWHERE = 2**62  # an id no row has
CODE = re.compile(r"[A-Za-z0-9_-]{3,64}")


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    own = {
        "key_id": os.environ.get("SHORTY_FUZZ_OWN_KEY_ID"),
        "user_id": os.environ.get("SHORTY_FUZZ_OWN_USER_ID"),
    }
    codes = [code for code in os.environ.get("SHORTY_FUZZ_CODES", "").split(",") if code]
    for name, value in (case.path_parameters or {}).items():
        if own.get(name) is not None and str(value) == own[name]:
            case.path_parameters[name] = ELSEWHERE
        elif name == "code" and codes and CODE.fullmatch(str(value)):
            # Half of the well-formed codes become links that exist (scripts/fuzz.py
            # made them), so reads, changes and statistics run past the 404; the
            # choice depends only on the generated value, so a seed replays it.
            digest = zlib.crc32(str(value).encode())
            if digest % 2 == 0:
                case.path_parameters[name] = codes[digest // 2 % len(codes)]
