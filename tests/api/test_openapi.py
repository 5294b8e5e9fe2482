"""The OpenAPI document is valid, covers every route, and tells the truth about answers."""

import re
import tomllib

from openapi_spec_validator import validate
from starlette.routing import Route

from shorty.api.app import create_app
from tests.api.helpers import conforms
from tests.conftest import ROOT
from tests.helpers import bearer


def test_document_is_valid_openapi_3_1(api):
    doc = api.get("/api/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)


def test_every_api_route_is_documented(api, settings):
    doc = api.get("/api/v1/openapi.json").json()
    app = create_app(settings)
    served = {
        (
            route.path.replace("{code:code}", "{code}").replace(
                "{letter_id:letter}", "{letter_id}"
            ),
            method.lower(),
        )
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/v1/")
        for method in (route.methods or set()) - {"HEAD"}
        if route.path != "/api/v1/openapi.json"
    }
    documented = {(path, method) for path, methods in doc["paths"].items() for method in methods}
    assert served == documented


def test_answers_match_their_documented_schemas(api, ada):
    doc = api.get("/api/v1/openapi.json").json()
    created = api.post(
        "/api/v1/shorten", json={"target": "https://example.com"}, headers=bearer(ada[1])
    )
    conforms(doc, "/api/v1/shorten", "post", created)
    code = created.json()["code"]
    conforms(
        doc, "/api/v1/urls/{code}", "get", api.get(f"/api/v1/urls/{code}", headers=bearer(ada[1]))
    )
    conforms(doc, "/api/v1/urls", "get", api.get("/api/v1/urls", headers=bearer(ada[1])))
    conforms(
        doc,
        "/api/v1/urls/{code}",
        "patch",
        api.patch(f"/api/v1/urls/{code}", json={"tags": ["x"]}, headers=bearer(ada[1])),
    )
    conforms(
        doc,
        "/api/v1/urls/bulk",
        "post",
        api.post(
            "/api/v1/urls/bulk",
            json={"items": [{"target": "https://a.example"}, {"x": 1}]},
            headers=bearer(ada[1]),
        ),
    )
    conforms(doc, "/api/v1/keys", "get", api.get("/api/v1/keys", headers=bearer(ada[1])))
    conforms(doc, "/api/v1/keys", "post", api.post("/api/v1/keys", json={}, headers=bearer(ada[1])))
    conforms(
        doc, "/api/v1/urls/{code}", "get", api.get("/api/v1/urls/nothere", headers=bearer(ada[1]))
    )
    conforms(
        doc, "/api/v1/shorten", "post", api.post("/api/v1/shorten", json={}, headers=bearer(ada[1]))
    )
    conforms(doc, "/api/v1/urls", "get", api.get("/api/v1/urls"))


def test_docs_page_lists_every_operation(api):
    page = api.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    doc = api.get("/api/v1/openapi.json").json()
    for path in doc["paths"]:
        assert f"<code>{path}</code>" in page.text
    assert "<script" not in page.text


def test_a_method_a_path_does_not_take_is_405_with_allow(api, ada):
    """Issue #12 item 14 (RFC 9110 section 15.5.6): Allow names every method of the path,
    not only those of the first route that matched it."""
    doc = api.get("/api/v1/openapi.json").json()
    for path, operations in doc["paths"].items():
        documented = {method.upper() for method in operations}
        if "GET" in documented:
            documented.add("HEAD")
        url = path.replace("{code}", "abc1234").replace("{key_id}", "1").replace("{user_id}", "1")
        url = url.replace("{letter_id}", "1-1")
        # /urls/bulk is also /urls/{code} with the code "bulk": those methods are taken.
        elsewhere = {
            method.upper()
            for other, methods in doc["paths"].items()
            if other != path and re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", other), url)
            for method in methods
        }
        for method in {"OPTIONS", "PUT", "PATCH", "DELETE", "POST", "GET"} - documented - elsewhere:
            response = api.request(method, url, headers=bearer(ada[1]))
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            allowed = {m.strip() for m in response.headers["allow"].split(",")}
            assert allowed == documented, (method, path)


def test_schemathesis_config_allows_422_exactly_where_the_document_says_why(api):
    """schemathesis.toml lets a schema-valid request be 422 only for operations whose
    description lists the rules a schema cannot say, and for all of them."""
    doc = api.get("/api/v1/openapi.json").json()
    described = {
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method, operation in operations.items()
        if "refused (422) when" in operation.get("description", "")
    }
    config = tomllib.loads((ROOT / "schemathesis.toml").read_text())
    allowed = {
        (entry["include-method"], entry["include-path"])
        for entry in config["operations"]
        if "422" in entry["checks"]["positive_data_acceptance"]["expected-statuses"]
    }
    assert described
    assert allowed == described
