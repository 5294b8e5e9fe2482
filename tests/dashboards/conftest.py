"""What the dashboard tests share: promtool (Debian's ``prometheus`` package, put in
the venv by scripts/promtool.py) and the Node.js packages of tests/dashboards/js."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.elk import node

JS = node.DASHBOARDS


@pytest.fixture(scope="session")
def promtool() -> Path:
    """The venv's promtool (`make pytest` puts it there), else one on PATH."""
    beside = Path(sys.executable).parent / "promtool"
    found = beside if beside.exists() else shutil.which("promtool")
    if found is None:
        message = (
            "promtool not found: install Debian's package `prometheus`"
            " (or run `make .venv/bin/promtool`)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return Path(found)


@pytest.fixture(scope="session")
def dashboard_js() -> Path:
    """tests/dashboards/js with its packages installed (`make pytest` did it already)."""
    node.install(JS)
    return JS
