"""Real output of Shorty's processes that is not a JSON log line: a crash's traceback,
command-line errors, the threads' stacks of a stop that overran, and the JSON line of a
failed startup whose message is a traceback; as the events Filebeat makes of them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys


def _run(*args: str, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SHORTY_")}
    return subprocess.Popen(
        [sys.executable, *args],
        env={**environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


CHAINED = """
import json
try:
    json.loads("{")
except ValueError as error:
    raise RuntimeError("config unreadable") from error
"""
OVERRAN = """
import time
from shorty.obs.logging import configure_logging
from shorty.stopdeadline import StopDeadline
configure_logging("INFO", "api")
StopDeadline(0.01).arm()
time.sleep(30)
"""
NOWHERE = "postgresql://shorty@127.0.0.1:1/shorty"  # nothing listens on port 1


def produce() -> dict[str, list[str]]:
    """Real output that is not a JSON log line (stderr), by kind, as the events Filebeat
    makes of it, and the message of a failed startup's JSON line that is a traceback."""
    started = {
        "zero": _run("-c", "1 / 0"),
        "chained": _run("-c", CHAINED),
        "bare": _run("-c", "raise RuntimeError"),
        "settings": _run("-m", "shorty", "serve", "api", SHORTY_LOG_LEVEL="bogus"),
        "usage": _run("-m", "shorty", "serve", "api", "--no-such-option"),
        # As a service stops past its bound: its log line is JSON (stdout), the
        # threads' stacks plain text (stderr).
        "overran": _run("-c", OVERRAN),
        "startup": _run(
            *("-m", "shorty", "serve", "redirect", "--port", "0", "--metrics-port", "0"),
            SHORTY_DATABASE_URL=NOWHERE,
            SHORTY_REDIS_URL="redis://127.0.0.1:1/0",
        ),
    }
    out = {kind: process.communicate(timeout=60) for kind, process in started.items()}
    assert all(process.returncode != 0 for process in started.values())
    events = {kind: _events(err) for kind, (_, err) in out.items()}
    events["startup"] = [
        record["message"]
        for record in map(json.loads, out["startup"][0].splitlines())
        if record["message"].startswith("Traceback")
    ]
    return events


# Filebeat's multiline parser (elk/filebeat/filebeat.yml): consecutive lines that do not
# start with "{" (blank ones too) are one event; a JSON line is always an event alone.
FILEBEAT_MULTILINE = re.compile(r"^([^{]|$)")


def _events(output: str) -> list[str]:
    """The events Filebeat makes of a container's lines."""
    events: list[list[str]] = []
    joining = False
    for line in output.splitlines():
        continues = bool(FILEBEAT_MULTILINE.match(line))
        if continues and joining:
            events[-1].append(line)
        else:
            events.append([line])
        joining = continues
    return ["\n".join(lines) for lines in events]
