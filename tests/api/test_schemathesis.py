"""Schemathesis against the live API (`shorty serve api`) with a real admin key:
no 5xx, and every answer conforms to the OpenAPI document."""

from __future__ import annotations

import asyncio
import secrets

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from shorty import embedded
from shorty.api.routes import OPERATIONS
from shorty.embedded import drop_database
from shorty.store import migrate
from tests.e2e.processes import Service, service_env
from tests.helpers import query

KEY = "schemathesis-admin-key-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def live_db(stack):
    name = f"shorty_st_{secrets.token_hex(4)}"
    url = asyncio.run(embedded.ensure_database(stack.admin_url, name))
    migrate.upgrade(url)
    try:
        yield url
    finally:
        asyncio.run(drop_database(stack.admin_url, name))


@pytest.fixture(scope="module")
def live_api(live_db, stack, tmp_path_factory):
    env = service_env(
        live_db,
        stack.redis_url,
        SHORTY_INITIAL_API_KEY=KEY,
        SHORTY_LIMIT_PER_KEY="off",
        SHORTY_LIMIT_PER_USER="off",
        SHORTY_LIMIT_PER_IP="off",
        SHORTY_LOGIN_LIMIT_PER_IP="off",
        SHORTY_LOGIN_LIMIT_PER_EMAIL="off",
        SHORTY_JWT_SECRET="schemathesis-jwt-secret-0123456789abcdef",
    )
    server = Service("api", env, tmp_path_factory.mktemp("schemathesis") / "api.log")
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()


def restore_admin(database_url):
    """Undo what a generated request may do to the admin's own key and user (id 1 is a
    valid id, so DELETE /keys/1 revokes the key every request uses)."""
    query(database_url, "UPDATE api_keys SET revoked_at = NULL, rate_limit = NULL WHERE id = 1")
    query(database_url, "UPDATE users SET rate_limit = NULL WHERE id = 1")


def test_api_conforms_to_its_document(live_api, live_db):
    """Every operation, with generated inputs; failures are collected and shown together.
    (Driven without schemathesis' pytest plugin, which does not run on pytest 9.)"""
    api = schemathesis.openapi.from_url(live_api + "/api/v1/openapi.json")
    failures = []
    operations = 0
    statuses: list[int] = []
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call_and_validate(
                base_url=live_api,
                headers={"Authorization": f"Bearer {KEY}"},
                # A request the schema allows may still break a rule a schema cannot say
                # (an alias that is taken, a target on the block-list): a 4xx is fine.
                excluded_checks=[checks.positive_data_acceptance],
            )
            statuses.append(response.status_code)

        before = len(statuses)
        try:
            check()
        except Exception as exc:  # collected, reported below
            failures.append(f"{operation.label}: {str(exc)[:2000]}")
        if set(statuses[before:]) == {401} and "/auth/" not in operation.label:
            failures.append(f"{operation.label}: the admin's key never got past 401")
        restore_admin(live_db)
    assert operations == len(OPERATIONS)
    assert not failures, "\n\n".join(failures)
    assert len(statuses) >= operations * 5  # every operation was exercised, several times
    assert any(200 <= status < 300 for status in statuses)
