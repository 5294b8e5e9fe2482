"""OpenTelemetry's own log lines, at most one a minute per logger (a collector that is
down would have each process warn every few seconds, for as long as it is down)."""

from __future__ import annotations

import json
import logging

import pytest

from shorty.obs.logging import configure_logging
from shorty.obs.logthrottle import Throttle

EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
QUEUE = "opentelemetry.sdk._shared_internal"


def record(name: str, message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_one_line_a_minute_per_logger_then_how_many_were_held_back():
    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0])
    passed = [throttle.filter(record(EXPORTER, "retrying in %.2fs", n)) for n in range(30)]
    assert passed == [True] + [False] * 29
    assert throttle.filter(record(QUEUE, "Queue full, dropping Span."))  # its own minute
    assert throttle.filter(record("shorty.worker", "anything"))  # not OpenTelemetry's
    now[0] += 59.9
    assert not throttle.filter(record(EXPORTER, "retrying in %.2fs", 1.5))
    now[0] += 0.1
    line = record(EXPORTER, "retrying in %.2fs", 2.25)
    assert throttle.filter(line)
    assert line.getMessage() == (
        "retrying in 2.25s (and 30 more from this logger since the last line, not logged)"
    )
    assert line.__dict__["shorty.log.held_back"] == 30
    now[0] += 60
    again = record(EXPORTER, "retrying in %.2fs", 4.0)
    assert throttle.filter(again)
    assert again.getMessage() == "retrying in 4.00s"  # none held back this time


@pytest.fixture
def lines(capsys):
    yield lambda: [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logging.getLogger().handlers[:] = []


def test_the_services_logs_throttle_opentelemetrys_lines(lines):
    configure_logging("INFO", "api")
    for attempt in range(50):
        logging.getLogger(EXPORTER).warning("Transient error, retrying (%d)", attempt)
        logging.getLogger("shorty.test").warning("ours (%d)", attempt)
    written = lines()
    assert [line["message"] for line in written if line["log"]["logger"] == EXPORTER] == [
        "Transient error, retrying (0)"
    ]
    assert len([line for line in written if line["log"]["logger"] == "shorty.test"]) == 50
