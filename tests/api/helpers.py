"""Helpers the API tests share: what a problem answer must look like, a link made
through the API, an answer checked against the served OpenAPI document."""

import jsonschema

from shorty.web.problems import PROBLEM_BASE
from tests.helpers import bearer


def problem(response, status, slug):
    """Assert ``response`` is an RFC 9457 problem with ``status`` and type ``slug``;
    return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    assert body["title"]
    return body


def new_link(api, key, target="https://example.com", **fields):
    """Shorten ``target`` (and ``fields``) with ``key``: the new link (201 asserted)."""
    response = api.post("/api/v1/shorten", json={"target": target, **fields}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


def shorten(api, key, target="https://example.com/", **fields):
    """Shorten ``target`` (and ``fields``) with ``key``: the new link's code."""
    return new_link(api, key, target, **fields)["code"]


def conforms(doc, path, method, response):
    """Assert ``response`` matches what the OpenAPI ``doc`` declares for it."""
    documented = doc["paths"][path][method]["responses"][str(response.status_code)]
    media = response.headers["content-type"].split(";")[0]
    schema = documented["content"][media]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": doc["components"]})
