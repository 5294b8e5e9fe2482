"""The live view's page and WebSocket: admins only, our own pages only."""

from __future__ import annotations

import json

import pytest
from starlette.websockets import WebSocketDisconnect

ORIGIN = {"origin": "http://testserver"}


def test_an_admin_gets_the_figures_every_second(root):
    page = root.get("/ui/admin/live")
    assert page.status_code == 200
    assert "SHORTY_LIVE_TARGETS" in page.text  # none set here: the page says how
    with root.websocket_connect("/ui/admin/live/ws", headers=ORIGIN) as socket:
        first = json.loads(socket.receive_text())
        second = json.loads(socket.receive_text())
    assert first["services"] == []
    assert second["at"] >= first["at"]


def test_another_sites_page_cannot_open_it(root):
    for origin in [{"origin": "https://evil.example"}, {}]:
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            root.websocket_connect("/ui/admin/live/ws", headers=origin) as socket,
        ):
            socket.receive_text()
        assert refused.value.code == 1008


def test_a_plain_user_cannot_watch(ada):
    assert ada.get("/ui/admin/live").status_code == 403
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        ada.websocket_connect("/ui/admin/live/ws", headers=ORIGIN) as socket,
    ):
        socket.receive_text()
    assert refused.value.code == 1008


def test_nobody_signed_in_cannot_watch(ui):
    with (
        pytest.raises(WebSocketDisconnect) as refused,
        ui.websocket_connect("/ui/admin/live/ws", headers=ORIGIN) as socket,
    ):
        socket.receive_text()
    assert refused.value.code == 1008


def test_the_chaos_panel_says_when_injection_is_off(root):
    page = root.get("/ui/admin/chaos")
    assert page.status_code == 404
    assert "Fault injection is off" in page.text


def test_the_page_shows_each_service_as_read(settings, clean):
    """A card per target, as the page is made: a worker that answers, an API that
    does not."""
    from starlette.testclient import TestClient

    from shorty.api.app import create_app
    from shorty.settings import LiveTarget
    from tests.helpers import free_port
    from tests.live.helpers import Service
    from tests.web_ui.conftest import ROOT, make_admin, post_form

    worker = Service()
    worker.breaker.labels("redis").set(1)
    try:
        targets = [
            LiveTarget(name="worker", metrics=worker.url),
            LiveTarget(name="api", metrics=f"http://127.0.0.1:{free_port()}/metrics"),
        ]
        make_admin(clean.database_url)
        with TestClient(
            create_app(settings.model_copy(update={"live_targets": targets}))
        ) as client:
            post_form(client, "/ui/login", {"email": ROOT[0], "password": ROOT[1]})
            html = client.get("/ui/admin/live").text
    finally:
        worker.close()
    worker_card = html.split('data-service="worker"')[1].split("</article>")[0]
    assert "<dt>Dead letters</dt><dd>0</dd>" in worker_card
    assert "<dt>Requests/s</dt>" not in worker_card
    assert '<li class="bad">redis: breaker open</li>' in worker_card
    api_card = html.split('data-service="api"')[1].split("</article>")[0]
    assert 'class="status">down: connection refused</p>' in api_card
