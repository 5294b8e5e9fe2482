"""What every ELK test reads: the real log lines of a scripted workload (once per
session, about 9 s) and the ECS field reference (npm ``@elastic/ecs``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.elk import node
from tests.elk.capture import Captured, capture


@pytest.fixture(scope="session")
def captured(stack, tmp_path_factory) -> Captured:
    return capture(stack.admin_url, tmp_path_factory.mktemp("captured-logs"))


@pytest.fixture(scope="session")
def js() -> None:
    """The Node.js packages of tests/elk/js, installed (`make test` did it already)."""
    node.install()


@pytest.fixture(scope="session")
def ecs_fields(js: None) -> dict[str, dict[str, Any]]:
    """Every ECS field by its flat name: type, level, allowed values..."""
    done = node.run("-e", "process.stdout.write(JSON.stringify(require('@elastic/ecs').EcsFlat))")
    assert done.returncode == 0, done.stderr
    fields: dict[str, dict[str, Any]] = json.loads(done.stdout)
    assert len(fields) > 1000, "the ECS reference looks truncated"
    return fields
