"""Integer path and query parameters: ASCII digits only, whatever else Python's
str.isdigit() or int() would take."""

import math

import hypothesis
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from shorty.api.app import create_app
from shorty.core.accounts import DEFAULT_SCOPES
from tests.api.helpers import problem, shorten
from tests.helpers import bearer, query, user_with_key


@pytest.fixture
def ada(clean):
    """A plain user whose key may also revoke keys (DELETE /keys/{key_id} needs it)."""
    return user_with_key(
        clean.database_url, "ada@example.com", scopes=(*DEFAULT_SCOPES, "keys:write")
    )


def test_unicode_digits_are_refused_not_a_500(api, ada, admin):
    """Issue #12 item 12: the three requests that answered 500."""
    code = shorten(api, ada[1])
    problem(api.delete("/api/v1/keys/%C2%B2", headers=bearer(ada[1])), 404, "not-found")
    after = problem(
        api.get("/api/v1/admin/users?after_id=²", headers=bearer(admin[1])),
        422,
        "validation-failed",
    )
    assert [error["field"] for error in after["errors"]] == ["after_id"]
    size = problem(
        api.get(f"/api/v1/urls/{code}/qr?size=²", headers=bearer(ada[1])), 422, "validation-failed"
    )
    assert [error["field"] for error in size["errors"]] == ["size"]


@pytest.mark.parametrize(
    "value",
    [
        "²",
        "\N{FULLWIDTH DIGIT ONE}\N{FULLWIDTH DIGIT TWO}",
        "٣",
        " 12",
        "12 ",
        "+5",
        "1_000",
        "0x10",
        "12.0",
        "1e1",
        "",
        "9" * 20,
    ],
)
def test_a_query_integer_is_ascii_digits_only(api, ada, value):
    body = problem(
        api.get("/api/v1/urls", params={"limit": value}, headers=bearer(ada[1])),
        422,
        "validation-failed",
    )
    assert body["errors"] == [
        {"field": "limit", "message": "must be a whole number: 1 to 19 digits 0-9"}
    ]
    assert api.get("/api/v1/urls?limit=007", headers=bearer(ada[1])).status_code == 200


def test_an_id_is_ascii_digits_within_bigint(api, admin):
    for text in ("%EF%BC%91", "+1", "0", "-1", str(2**63), "9" * 5000):
        path = f"/api/v1/admin/keys/{text}"
        problem(
            api.patch(path, json={"rate_limit": None}, headers=bearer(admin[1])), 404, "not-found"
        )
    problem(
        api.patch(
            f"/api/v1/admin/keys/{2**63 - 1}", json={"rate_limit": None}, headers=bearer(admin[1])
        ),
        404,
        "key-not-found",
    )


# --- every integer parameter of the OpenAPI document, fed arbitrary text -------------

MAX_DIGITS = 19  # docs/api.md: an integer parameter is 1 to 19 ASCII digits
EDGES = [
    "²", "\N{FULLWIDTH DIGIT ONE}\N{FULLWIDTH DIGIT TWO}", "٣", "⑤", "Ⅻ",
    "\N{MATHEMATICAL BOLD DIGIT ONE}", " 12", "12 ", "\t1", "1\n", "+5", "-1", "1_000",
    "0x10", "1e3", "12.0", "0", "00", "007", "1/2", "..", "%41", "\x00",
    str(2**63 - 1), str(2**63), "0" * 18 + "1", "0" * 19 + "1", "9" * 40, "9" * 5000,
]  # fmt: skip
NUMBERS = st.integers(min_value=-(2**70), max_value=2**70).map(str)
DIGIT_LIKE = st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=6)
SIGNED = st.from_regex(r"[ +\-]?[0-9]{1,24} ?", fullmatch=True)


def texts(where, schema):
    """Text of every kind, numbers in the documented range among them."""
    in_range = st.integers(schema.get("minimum", 0), schema.get("maximum", 2**63 - 1))
    anything = st.text(min_size=1 if where == "path" else 0)  # '' is no path segment
    return st.one_of(
        st.sampled_from(EDGES), in_range.map(str), NUMBERS, DIGIT_LIKE, SIGNED, anything
    )


# Bodies for the operations that need one: valid, and changing nothing that matters.
BODIES = {
    ("patch", "/api/v1/admin/users/{user_id}"): {"rate_limit": None},
    ("patch", "/api/v1/admin/keys/{key_id}"): {"rate_limit": None},
}
# The parameters issue #12 named, and the query models' own: the test must find them.
KNOWN = {
    ("delete", "/api/v1/keys/{key_id}", "key_id"),
    ("patch", "/api/v1/admin/keys/{key_id}", "key_id"),
    ("patch", "/api/v1/admin/users/{user_id}", "user_id"),
    ("get", "/api/v1/admin/users", "after_id"),
    ("get", "/api/v1/admin/users", "limit"),
    ("get", "/api/v1/urls", "limit"),
    ("get", "/api/v1/urls/{code}/qr", "size"),
    ("get", "/api/v1/urls/{code}/stats", "top"),
    ("get", "/api/v1/stats/summary", "top"),
    ("get", "/api/v1/admin/chaos", "limit"),
    ("post", "/api/v1/admin/chaos/{experiment_id}/stop", "experiment_id"),
}
# What a path id that names nothing answers, per kind of thing.
NOT_FOUND = ("key-not-found", "user-not-found", "experiment-not-found")


def integer_parameters(doc):
    """(method, path, operation, parameter) for every integer parameter of the document."""
    return [
        (method, path, operation, parameter)
        for path, methods in doc["paths"].items()
        for method, operation in methods.items()
        for parameter in operation.get("parameters", [])
        if parameter["schema"].get("type") == "integer"
    ]


def encoded(text):
    # Every character but ASCII letters and digits percent-encoded, dots too, so the
    # client sends the text as one path segment ('/' still splits it on the server).
    return "".join(
        c if c.isascii() and c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in text
    )


def is_valid(text, schema):
    return (
        text.isascii()
        and text.isdigit()
        and len(text) <= MAX_DIGITS
        and schema.get("minimum", -math.inf) <= int(text) <= schema.get("maximum", math.inf)
    )


def check(response, text, where, name, schema, admin_only, as_admin):
    """The answer a request with ``text`` in parameter ``name`` must get."""
    assert response.status_code < 500, response.text
    if response.status_code < 400:
        body = None
    else:
        assert response.headers["content-type"] == "application/problem+json", response.text
        body = response.json()
        assert body["status"] == response.status_code
    slug = body["type"].rsplit("/", 1)[1] if body else None
    if where == "path" and "/" in text:  # another path, which no route takes
        assert (response.status_code, slug) == (404, "not-found")
    elif admin_only and not as_admin:
        assert (response.status_code, slug) == (403, "insufficient-scope")
    elif not is_valid(text, schema):
        if where == "path":
            assert (response.status_code, slug) == (404, "not-found")
        else:
            assert (response.status_code, slug) == (422, "validation-failed")
            assert [error["field"] for error in body["errors"]] == [name]
    elif where == "path":  # looked up: found, or not found as what it names
        assert response.status_code in (200, 204) or slug in NOT_FOUND
    else:
        assert response.status_code == 200, response.text


def test_no_integer_parameter_answers_5xx(settings, ada, admin, clean):
    """Issue #12 item 12: every integer path and query parameter the served document
    declares, with arbitrary text, as an admin and as a user: never a 5xx, a 4xx is
    problem+json, and the text is refused exactly when it is not 1 to 19 ASCII digits
    in the documented range (404 for a path id, 422 naming a query parameter)."""
    # Fault injection on: its routes answer 404 chaos-disabled before they read a
    # parameter when it is off.
    unlimited = settings.model_copy(
        update={
            "limit_per_key": "off",
            "limit_per_user": "off",
            "limit_per_ip": "off",
            "chaos_enabled": True,
        }
    )
    with TestClient(create_app(unlimited)) as api:
        code = shorten(api, ada[1])
        doc = api.get("/api/v1/openapi.json").json()
        found = integer_parameters(doc)
        assert {(method, path, p["name"]) for method, path, _, p in found} >= KNOWN
        for method, path, operation, parameter in found:
            request = (method, path.replace("{code}", code), BODIES.get((method, path)))
            tried = fuzz(api, request, operation, parameter, (admin[1], ada[1]), clean)
            # Both kinds of text reached it: some refused, some taken.
            assert tried == {True, False}, (method, path, parameter["name"])


def fuzz(api, request, operation, parameter, keys, clean):
    """Send ``request`` (method, url, body) with arbitrary text in ``parameter``, with
    the admin's key and the user's; return whether valid texts, invalid ones, or both
    were tried."""
    method, url, body = request
    name, where, schema = parameter["name"], parameter["in"], parameter["schema"]
    admin_only = "admin" in operation["tags"]
    tried = set()

    @hypothesis.settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    # Both kinds of text for certain, whatever the generation does on a loaded
    # machine (once, under load, it drew only invalid ones for the QR size).
    @example(text=str(int(schema.get("minimum", 1))))
    @example(text="x")
    @given(text=texts(where, schema))
    def exchange(text):
        target, params = url, {}
        if where == "path":
            target = url.replace(f"{{{name}}}", encoded(text))
        else:
            params[name] = text
        assert "{" not in target, f"no value for a path parameter of {url}"
        tried.add(is_valid(text, schema))
        for key, as_admin in zip(keys, (True, False), strict=True):
            response = api.request(method, target, params=params, json=body, headers=bearer(key))
            check(response, text, where, name, schema, admin_only, as_admin)
            if response.status_code == 204:  # a key was revoked: not for long
                query(clean.database_url, "UPDATE api_keys SET revoked_at = NULL")

    exchange()
    return tried
