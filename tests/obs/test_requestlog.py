import json
import logging

import pytest
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.obs.logging import configure_logging
from tests.helpers import bearer


@pytest.fixture
def json_lines(capsys):
    def read():
        return [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if line.startswith("{")
        ]

    yield read
    logging.getLogger().handlers[:] = []


def test_one_json_line_per_request_without_secrets(settings, json_lines):
    configure_logging("INFO", "api")
    with TestClient(create_app(settings)) as client:
        json_lines()  # drop start-up lines
        response = client.get(
            "/api/v1/urls/abc?token=s3cret",
            headers={
                **bearer("shk_secretvalue"),
                "User-Agent": "probe/1",
                "X-Request-ID": "req-42",
            },
        )
        client.get("/livez")  # probes are not logged when they succeed
    assert response.status_code == 401
    assert response.headers["x-request-id"] == "req-42"
    lines = [line for line in json_lines() if line.get("log", {}).get("logger") == "shorty.request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["http"]["request"]["method"] == "GET"
    assert line["http"]["request"]["id"] == "req-42"
    assert line["http"]["response"]["status_code"] == 401
    assert line["url"]["path"] == "/api/v1/urls/abc"
    assert line["user_agent"]["original"] == "probe/1"
    assert line["service"]["name"] == "shorty-api"
    assert isinstance(line["event"]["duration"], int)
    assert "s3cret" not in json.dumps(line)
    assert "shk_secretvalue" not in json.dumps(line)


def test_unsafe_request_id_is_replaced(settings, json_lines):
    with TestClient(create_app(settings)) as client:
        response = client.get("/livez", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32
