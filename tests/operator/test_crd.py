"""The ShortLink CRD: its shape, its examples, and what it refuses."""

import pytest
import yaml

from shorty.core.codes import validate_alias
from tests.operator.crd import Rejected, admit, crd, examples


def link(**spec):
    return {
        "apiVersion": "shorty.dev/v1alpha1",
        "kind": "ShortLink",
        "metadata": {"name": "x", "namespace": "default"},
        "spec": {"target": "https://example.com/", **spec},
    }


def test_names_scope_status_and_printer_columns():
    spec = crd()["spec"]
    assert crd()["metadata"]["name"] == "shortlinks.shorty.dev"
    assert (spec["group"], spec["scope"]) == ("shorty.dev", "Namespaced")
    assert spec["names"]["kind"] == "ShortLink"
    assert spec["names"]["shortNames"] == ["sl"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Code", "Target", "Ready", "Clicks", "Age"]


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_every_example_is_admitted(path):
    obj = yaml.safe_load(path.read_text())
    stored = admit(obj)
    assert stored["spec"]["redirectType"] in (301, 302, 307, 308)
    if "code" in obj["spec"]:
        assert validate_alias(obj["spec"]["code"]) == obj["spec"]["code"]  # the API agrees


def test_defaults_are_applied():
    stored = admit(link())
    assert stored["spec"] == {
        "target": "https://example.com/",
        "redirectType": 302,
        "disabled": False,
        "forwardQuery": "None",
    }


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"target": "ftp://example.com/"}, "does not match"),
        ({"target": "https://" + "a" * 2048}, "is too long"),
        ({"code": "ab"}, "is too short"),
        ({"code": "-dash-first"}, "does not match"),
        ({"code": "c" * 65}, "is too long"),
        ({"redirectType": 303}, "is not one of"),
        ({"maxClicks": 0}, "less than the minimum"),
        ({"expiresAt": "next tuesday"}, "is not a 'date-time'"),
        ({"tags": ["ok", ""]}, "should be non-empty"),
        ({"disabled": "yes"}, "is not of type 'boolean'"),
        ({"redirectType": 301, "maxClicks": 10}, "permanent redirect"),
        ({"redirectType": 308, "expiresAt": "2030-01-01T00:00:00Z"}, "permanent redirect"),
    ],
)
def test_bad_specs_are_refused_with_the_reason(spec, problem):
    with pytest.raises(Rejected, match=problem):
        admit(link(**spec))


def test_a_missing_target_is_refused():
    obj = link()
    del obj["spec"]["target"]
    with pytest.raises(Rejected, match="'target' is a required property"):
        admit(obj)


@pytest.mark.parametrize(
    ("before", "after"),
    [({"code": "first"}, {"code": "second"}), ({"code": "first"}, {}), ({}, {"code": "later"})],
)
def test_the_code_cannot_change_once_the_link_exists(before, after):
    old = admit(link(**before))
    with pytest.raises(Rejected, match="cannot be added, changed or removed"):
        admit(link(**after), old=old)


def test_other_fields_may_change():
    old = admit(link(code="stays"))
    assert admit(link(code="stays", target="https://example.org/", disabled=True), old=old)
