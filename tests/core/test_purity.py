"""``shorty.core`` is the domain: importing all of it pulls in no driver or web stack."""

import json
import pkgutil
import subprocess
import sys

import shorty.core

DRIVERS = ("asyncpg", "redis", "starlette", "uvicorn")

_PROBE = """
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted({module.split(".")[0] for module in sys.modules})))
"""


def core_modules():
    return [info.name for info in pkgutil.walk_packages(shorty.core.__path__, "shorty.core.")]


def test_every_core_module_is_found():
    assert {"shorty.core.accounts", "shorty.core.errors", "shorty.core.links"} <= set(
        core_modules()
    )


def test_importing_the_core_imports_no_driver():
    """A fresh interpreter, so modules other tests imported do not count."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *core_modules()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = set(json.loads(result.stdout))
    assert "shorty" in loaded
    assert loaded.isdisjoint(DRIVERS), sorted(loaded & set(DRIVERS))
