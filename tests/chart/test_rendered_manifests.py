"""manifests/rendered/: the chart rendered for `kubectl apply` (`make manifests`) is
up to date, commits no Secret, and the Secret it needs is the one
manifests/README.md tells the user to create."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType
from typing import Any

import yaml

from tests.chart.render import HELM, ROOT, helm


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manifests", ROOT / "scripts" / "manifests.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def secret_keys(node: Any, name: str) -> set[str]:
    """Every key of the Secret ``name`` that a secretKeyRef under ``node`` reads."""
    if isinstance(node, dict):
        ref = node.get("secretKeyRef")
        found = {ref["key"]} if isinstance(ref, dict) and ref["name"] == name else set()
        return found.union(*(secret_keys(value, name) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(secret_keys(value, name) for value in node))
    return set()


def test_the_committed_manifests_are_what_the_chart_renders():
    helm("version")  # skips (fails under CI) without the binary
    manifests = script()
    assert manifests.OUT.read_text() == manifests.rendered(str(HELM)), (
        "manifests/rendered/ is out of date: run `make manifests`"
    )


def test_no_secret_or_hook_is_committed_and_the_readme_names_every_key():
    manifests = script()
    docs = [doc for doc in yaml.safe_load_all(manifests.OUT.read_text()) if doc]
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    assert not [doc for doc in docs if "helm.sh/hook" in doc["metadata"].get("annotations", {})]
    needed = secret_keys(docs, manifests.SECRET)
    readme = (ROOT / "manifests" / "README.md").read_text()
    (command,) = re.findall(r"kubectl create secret generic shorty[^`]*?\n```", readme, re.S)
    assert set(re.findall(r"--from-literal=([a-z-]+)=", command)) == needed
