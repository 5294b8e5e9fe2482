"""Integer path and query parameters: ASCII digits only, whatever else Python's
str.isdigit() or int() would take."""

import pytest

from tests.api.test_manage import shorten
from tests.api.test_shorten import problem
from tests.helpers import bearer


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
