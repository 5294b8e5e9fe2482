"""The drain delay (``shorty.web.drain``): which signal waits, which stops at once,
and what ``/readyz`` answers meanwhile. The processes themselves under real
signals: ``tests/chaos/test_stop.py``."""

from __future__ import annotations

import signal
import threading

from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.web.drain import Drain


def test_sigterm_waits_the_delay_then_stops():
    drain, stopped = Drain(0.2), threading.Event()
    assert not drain.draining
    assert drain.begin(signal.SIGTERM, stopped.set)  # the caller waits
    assert drain.draining
    assert not stopped.is_set()
    assert stopped.wait(5)


def test_a_second_signal_stops_now_and_the_timer_never_fires():
    drain, stopped = Drain(0.3), threading.Event()
    assert drain.begin(signal.SIGTERM, stopped.set)
    assert not drain.begin(signal.SIGTERM, stopped.set)  # the caller stops now
    assert not stopped.wait(0.6)
    assert not drain.begin(signal.SIGINT, stopped.set)  # and after that, too
    assert drain.draining


def test_no_delay_or_sigint_stops_at_once_and_readiness_still_says_no():
    for drain, sig in ((Drain(0), signal.SIGTERM), (Drain(10), signal.SIGINT)):
        stopped = threading.Event()
        assert not drain.begin(sig, stopped.set)
        assert drain.draining
        assert not stopped.wait(0.05)  # the caller's own stop, not the timer's


def test_readyz_of_both_services_answers_draining_and_the_rest_is_served(settings):
    for make in (create_api, create_redirect):
        drain, stopped = Drain(30), threading.Event()
        with TestClient(make(settings, drain=drain)) as client:
            assert client.get("/readyz").status_code == 200
            assert drain.begin(signal.SIGTERM, stopped.set)
            answer = client.get("/readyz")
            assert (answer.status_code, answer.json()) == (503, {"status": "draining"})
            assert answer.headers["cache-control"] == "no-store"
            assert client.get("/livez").status_code == 200
            assert not drain.begin(signal.SIGTERM, stopped.set)  # end the delay
        assert not stopped.is_set()
