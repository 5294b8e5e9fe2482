"""Where kopf keeps each handler's progress on a ShortLink, and the move to stable ids.

kopf records a handler's progress (when it started, how many retries, when the
next one is due) in an annotation named after the handler's id:
``shorty.dev/upsert``. Until the handlers had ids of their own, kopf named them
after the closures they were (``build_registry.<locals>.upsert``), so ShortLinks
handled by that operator may carry ``shorty.dev/build_registry._locals_.upsert``.

``ProgressStorage`` reads a handler's record under its old name when there is none
under the new one, and drops the old name whenever it writes or purges the new one:
a ShortLink retrying when the operator is upgraded goes on with its retries (and its
backoff) instead of starting over, and no old annotation is left behind.
"""

from __future__ import annotations

import kopf

# kopf's ids of today's handlers -> the ids kopf gave them before (see ``handlers``).
LEGACY_IDS: dict[str, kopf.HandlerId] = {
    "upsert": kopf.HandlerId("build_registry.<locals>.upsert"),  # resume and create
    "upsert/spec": kopf.HandlerId("build_registry.<locals>.upsert/spec"),  # spec updates
    "delete": kopf.HandlerId("build_registry.<locals>.remove"),
}


class ProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's annotations storage, reading and then dropping the old handler names."""

    def fetch(self, *, key: kopf.HandlerId, body: kopf.Body) -> kopf.ProgressRecord | None:
        record = super().fetch(key=key, body=body)
        if record is None and key in LEGACY_IDS:
            record = super().fetch(key=LEGACY_IDS[key], body=body)
        return record

    def store(
        self,
        *,
        key: kopf.HandlerId,
        record: kopf.ProgressRecord,
        body: kopf.Body,
        patch: kopf.Patch,
    ) -> None:
        super().store(key=key, record=record, body=body, patch=patch)
        if key in LEGACY_IDS:
            super().purge(key=LEGACY_IDS[key], body=body, patch=patch)

    def purge(self, *, key: kopf.HandlerId, body: kopf.Body, patch: kopf.Patch) -> None:
        super().purge(key=key, body=body, patch=patch)
        if key in LEGACY_IDS:
            super().purge(key=LEGACY_IDS[key], body=body, patch=patch)
