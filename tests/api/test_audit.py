"""Security events (obs/audit.py) are logged, one line each, with who and what, never a secret."""

import logging

import pytest

from tests.api.helpers import shorten
from tests.helpers import bearer, scalar

PASSWORD = "correct horse battery"


@pytest.fixture
def audit_log(caplog):
    caplog.set_level(logging.INFO, logger="shorty.audit")
    return caplog


def events(caplog):
    return [
        (r.__dict__["event.action"], r.__dict__["event.outcome"])
        for r in caplog.records
        if r.name == "shorty.audit"
    ]


def test_logins_registrations_keys_roles_and_blocks_are_audited(api, admin, clean, audit_log):
    ada = {"email": "ada@example.com", "password": PASSWORD}
    api.post("/api/v1/auth/register", json=ada)
    api.post("/api/v1/auth/register", json=ada)  # taken: the log says so, the answer not
    api.post("/api/v1/auth/login", json={**ada, "password": "wrong password!"})
    token = api.post("/api/v1/auth/login", json=ada).json()["access_token"]
    key = api.post("/api/v1/keys", json={}, headers=bearer(token)).json()
    api.delete(f"/api/v1/keys/{key['id']}", headers=bearer(token))
    ada_id = scalar(clean.database_url, "SELECT id FROM users WHERE email = $1", ada["email"])
    api.patch(f"/api/v1/admin/users/{ada_id}", json={"role": "admin"}, headers=bearer(admin[1]))
    code = shorten(api, admin[1])
    api.put(f"/api/v1/admin/urls/{code}/block", json={"reason": "spam"}, headers=bearer(admin[1]))
    api.delete(f"/api/v1/admin/urls/{code}/block", headers=bearer(admin[1]))
    assert events(audit_log) == [
        ("register", "success"),
        ("register", "failure"),
        ("login", "failure"),
        ("login", "success"),
        ("api-key-create", "success"),
        ("api-key-revoke", "success"),
        ("user-change", "success"),
        ("link-block", "success"),
        ("link-unblock", "success"),
    ]
    change = next(r for r in audit_log.records if r.__dict__["event.action"] == "user-change")
    assert (change.__dict__["user.id"], change.__dict__["user.target.id"]) == (
        str(admin[0]),
        str(ada_id),
    )  # ECS keywords
    assert change.__dict__["shorty.changes"] == {"role": "admin"}
    text = " ".join(str(r.__dict__) for r in audit_log.records)
    for secret in (PASSWORD, key["key"], token, ada["email"]):
        assert secret not in text


def test_a_reused_refresh_token_is_audited(api, audit_log):
    ada = {"email": "ada@example.com", "password": PASSWORD}
    api.post("/api/v1/auth/register", json=ada)
    pair = api.post("/api/v1/auth/login", json=ada).json()
    api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    api.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert ("refresh-token-reused", "failure") in events(audit_log)
