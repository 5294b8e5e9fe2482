"""Whether the operator is acting or held by kopf's peering, made visible.

kopf holds every watch of ShortLinks (so nothing is reconciled) while it waits for
the peering object, while another operator with a higher or the same priority is
alive in it, and for good when the named peering object does not exist — the last
only said by a DEBUG line. kopf keeps this state to itself, but says every change
of it through its peering logger; ``PeeringState`` follows those lines and shows
the state in ``/healthz`` (the ``peering`` probe), in ``shorty_operator_paused`` and,
for a missing peering object, in a WARNING.

The lines are kopf 1.45's (``kopf/_core/engines/peering.py``); tests/operator's
peering cases fail if a kopf upgrade changes them.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

KOPF_PEERING_LOGGER = "kopf._core.engines.peering"

PAUSED = Gauge(
    "shorty_operator_paused",
    "1 while kopf's peering holds the operator (waiting for the peering object, another "
    "operator in it, or the object missing): no ShortLink is reconciled",
)

logger = logging.getLogger(__name__)

# What kopf logs, and the state each line means.
_PAUSING = (
    "Pausing operations in favour of",
    "Pausing all operators, including self",
    # At a start, while kopf still holds everything, it says only this of a same-priority peer.
    "Possibly conflicting operators with the same priority",
)
_WAITING = "kopf has not read the peering object yet, or another operator in it holds this one"
_RESUMING = "Resuming operations after the pause"
_KEEPALIVE = "Keep-alive in "


class PeeringState(logging.Filter):
    """The operator's peering state, kept from kopf's peering log lines:

    - ``standalone``: no peering (``--standalone``), always acting;
    - ``waiting``: a named peering, not read yet (kopf holds the watches until then);
    - ``active``: acting;
    - ``paused``: another operator in the peering has a higher or the same priority;
    - ``missing``: the named peering object does not exist; kopf waits for it.

    Installed as a filter on kopf's peering logger, it also keeps that logger's
    DEBUG lines (every keep-alive) out of a log at a higher level."""

    def __init__(self, name: str | None, *, standalone: bool) -> None:
        super().__init__()
        self.peering = name
        # A named peering (--peering) is mandatory: kopf holds everything until it is read.
        # Without a name, kopf uses its "default" peering only if it finds one, never waiting.
        self.mandatory = name is not None and not standalone
        self.state = "standalone" if standalone else "waiting" if self.mandatory else "active"
        self.why = _WAITING if self.state == "waiting" else ""
        self.since = datetime.now(UTC)
        PAUSED.set(self.paused)

    @property
    def paused(self) -> bool:
        return self.state in ("waiting", "paused", "missing")

    def install(self) -> None:
        """Follow kopf's peering logger (which must then let its DEBUG lines through)."""
        kopf_peering = logging.getLogger(KOPF_PEERING_LOGGER)
        kopf_peering.setLevel(logging.DEBUG)
        kopf_peering.addFilter(self)

    def report(self) -> dict[str, Any]:
        """What ``/healthz`` shows under ``peering``."""
        shown: dict[str, Any] = {
            "state": self.state,
            "paused": self.paused,
            "since": self.since.isoformat(timespec="seconds"),
        }
        if self.peering:
            shown["name"] = self.peering
        if self.why:
            shown["why"] = self.why
        return shown

    def filter(self, record: logging.LogRecord) -> bool:
        self.follow(record.getMessage())
        return record.levelno >= logging.getLogger().getEffectiveLevel()

    def follow(self, message: str) -> None:
        if message.startswith(_PAUSING):
            self._become("paused", message)
        elif message.startswith(_RESUMING):
            self._become("active", "")
        elif message.startswith(_KEEPALIVE) and message.endswith(": not found."):
            if self.mandatory and self.state != "missing":  # once, not at every keep-alive
                self._become("missing", f"the peering object {self.peering!r} does not exist")
                logger.warning(
                    "The ClusterKopfPeering %r does not exist: kopf waits for it, and no "
                    "ShortLink is reconciled until it does. Apply manifests/operator/"
                    "peering.yaml, or run with --standalone.",
                    self.peering,
                )
        elif (
            self.state == "missing" and message.startswith(_KEEPALIVE) and message.endswith(": ok.")
        ):
            self._become("waiting", _WAITING)  # it exists now: kopf acts once it has read it

    def _become(self, state: str, why: str) -> None:
        if state != self.state:
            self.since = datetime.now(UTC)
            if state == "active" and self.state != "waiting":
                logger.info("Reconciling again: the peering no longer holds this operator.")
        self.state, self.why = state, why
        PAUSED.set(self.paused)
