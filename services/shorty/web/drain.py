"""The drain delay: after SIGTERM an HTTP service keeps serving for a while, its
``/readyz`` answering 503 ``draining``, before it stops accepting.

Kubernetes sends SIGTERM and takes the pod out of its Service's endpoints at the
same time, and the Ingress and kube-proxy learn of it a moment later: a process
that stopped accepting at once would refuse the requests still routed to it.
Serving on for ``SHORTY_DRAIN_DELAY`` seconds while readiness says "no more" covers
that moment (what a ``preStop`` sleep does, with no shell in the image).

SIGTERM starts the delay; SIGINT (Ctrl-C at a terminal, where nothing routes
traffic) and a second SIGTERM cut it short, and the stop begins at once. The
stop itself, its bound and its exit code are ``shorty.web.server``'s.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Drain:
    """Whether the process is draining, and the timer that ends the delay.

    ``begin(sig, stop)`` is called with each stop signal: it returns ``True``
    when the stop waits (the delay has just started; ``stop()`` is called from a
    timer thread when it ends) and ``False`` when the caller stops now (no delay,
    SIGINT, or a second signal: the timer is cancelled)."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self._draining = False
        self._timer: threading.Timer | None = None
        # Re-entrant: taken in a signal handler, which a second signal may interrupt.
        self._lock = threading.RLock()

    @property
    def draining(self) -> bool:
        return self._draining

    def begin(self, sig: int, stop: Callable[[], None]) -> bool:
        with self._lock:
            if self._timer is not None:  # a second signal: stop now
                self._timer.cancel()
                self._timer = None
                log.info("stop signal during the drain delay: stopping now")
                return False
            already, self._draining = self._draining, True
            if already or self.seconds <= 0 or sig != signal.SIGTERM:
                return False
            self._timer = threading.Timer(self.seconds, self._end, args=(stop,))
            self._timer.daemon = True
            self._timer.start()
        log.info(
            "SIGTERM: /readyz answers 503 and requests are still served for %g s"
            " (SHORTY_DRAIN_DELAY), then the stop begins",
            self.seconds,
        )
        return True

    def _end(self, stop: Callable[[], None]) -> None:
        with self._lock:
            if self._timer is None:  # cut short meanwhile
                return
            self._timer = None
        stop()
