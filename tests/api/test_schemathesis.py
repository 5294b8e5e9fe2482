"""Schemathesis against a live `shorty serve api`, as `make fuzz` runs it (every check,
the repository's schemathesis.toml, a fixed seed, a regular user's key and an admin's)
with fewer examples: no failure, and every operation of the document tested."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from shorty.api.routes import OPERATIONS
from tests.conftest import ROOT


def test_schemathesis_finds_nothing_as_a_user_or_an_admin(stack):
    env = {
        **os.environ,
        "SHORTY_DATABASE_URL": stack.admin_url,
        "SHORTY_REDIS_URL": stack.redis_url,
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--examples", "15"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20_000:]
    assert "schemathesis found nothing, as a user and as an admin." in report
    operations = sum(len(route.methods - {"HEAD"}) for route, _ in OPERATIONS)
    assert re.findall(r"Tested: (\d+)", report) == [str(operations)] * 2, report[-5000:]
    generated = [int(n) for n in re.findall(r"(\d+) generated, \1 passed", report)]
    assert len(generated) == 2
    assert all(n >= operations * 15 for n in generated)
