"""The catalogue of problem types (``PROBLEM_TYPES``), which bounds the labels of
shorty_http_problems_total, holds every type the code can answer with and every
one docs/api.md lists."""

from __future__ import annotations

import re

import shorty.api.problems  # noqa: F401  (imports every domain error the API maps)
from shorty.core.errors import DomainError
from shorty.redirect import pages
from shorty.web.problems import PROBLEM_TYPES
from tests.conftest import ROOT

SOURCES = ROOT / "services" / "shorty"


def subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(subclasses(sub) for sub in found))


def test_every_domain_error_is_in_the_catalogue():
    slugs = {error.slug for error in subclasses(DomainError) | {DomainError}}
    assert len(slugs) > 15
    assert slugs - PROBLEM_TYPES == set()


def test_every_problem_the_code_raises_is_in_the_catalogue():
    # Problem(status, "slug", ...) anywhere in the services, over one line or several.
    raised = {
        slug
        for path in SOURCES.rglob("*.py")
        for slug in re.findall(r'Problem\(\s*\d{3},\s*"([a-z0-9-]+)"', path.read_text())
    }
    assert len(raised) > 15
    redirect = {slug for slug, _, _ in (*pages._KINDS.values(), pages._BLOCKED)}
    mapped_by_status = {"not-found", "method-not-allowed", "internal-error"}
    assert (raised | redirect | mapped_by_status) - PROBLEM_TYPES == set()


def test_every_problem_docs_api_lists_is_in_the_catalogue():
    text = (ROOT / "docs" / "api.md").read_text()
    table = text[text.index("| status | `type`") : text.index("401 responses carry")]
    rows = [line.split("|") for line in table.splitlines()[2:] if line.startswith("|")]
    listed = {slug for row in rows for slug in re.findall(r"`([a-z0-9-]+)`", row[2])}
    assert len(listed) > 30
    assert listed - PROBLEM_TYPES == set()
