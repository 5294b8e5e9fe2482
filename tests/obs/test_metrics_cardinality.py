"""The label sets of every Shorty metric stay bounded whatever clients send: 10,000
requests with random codes, paths and methods (garbage ones included) against the
redirect service and the API (in process, on the real PostgreSQL and Redis) add
only a handful of label sets, and none holds a path, a code or a method a client
made up."""

from __future__ import annotations

import asyncio
import random
import string
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from tests.helpers import user_with_key

REQUESTS = 10_000  # to each service
AT_ONCE = 32  # requests in flight together (under the pool's and the lookups' bounds)
# What a family may gain from the whole burst: the methods Shorty names (8) times the
# few routes and statuses the burst can reach. The old request log, which labelled the
# raw method, made one set per garbage method: thousands.
MOST_NEW_SETS = 60
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
LabelSets = dict[str, set[frozenset[tuple[str, str]]]]


def label_sets() -> LabelSets:
    """Every Shorty family's distinct label sets (a histogram's ``le`` left out)."""
    found: LabelSets = {}
    for family in REGISTRY.collect():
        if family.name.startswith("shorty_"):
            sets = found.setdefault(family.name, set())
            for sample in family.samples:
                sets.add(frozenset((k, v) for k, v in sample.labels.items() if k != "le"))
    return found


def garbage(rng: random.Random, alphabet: str, most: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, most)))


def method(rng: random.Random) -> str:
    """Half the methods Shorty names; the rest made up: tokens, lower case, junk."""
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(METHODS)
    if roll < 0.7:
        return garbage(rng, string.ascii_uppercase, 12)
    if roll < 0.8:
        return rng.choice(METHODS).lower()
    return garbage(rng, string.printable, 20)


def code(rng: random.Random) -> str:
    """Codes that could be one, and paths that could not."""
    if rng.random() < 0.6:
        return garbage(rng, string.ascii_letters + string.digits + "-_", 20)
    return garbage(rng, string.ascii_letters + string.digits + "/.%~!$&'()*+,;=:@", 40)


def requests(rng: random.Random, prefix: str) -> list[tuple[str, str]]:
    """REQUESTS (method, path) pairs, each path ``prefix`` and a random code."""
    return [(method(rng), prefix + code(rng)) for _ in range(REQUESTS)]


async def call(app: Any, state: dict[str, Any], verb: str, path: str, headers: list) -> int:
    """One request straight into the ASGI app; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": verb,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50_000),
        "server": ("testserver", 80),
        "state": state.copy(),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the caller never goes away before its answer
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def burst(app: Any, sent: list[tuple[str, str]], headers: list) -> set[int]:
    """The requests ``sent`` to ``app``, AT_ONCE at a time; the statuses answered."""
    statuses: set[int] = set()
    with TestClient(app) as client:  # its lifespan, and the loop it runs in
        state = client.app_state

        async def all_of_them() -> None:
            for start in range(0, len(sent), AT_ONCE):
                batch = sent[start : start + AT_ONCE]
                answers = await asyncio.gather(
                    *(call(app, state, verb, path, headers) for verb, path in batch)
                )
                statuses.update(answers)

        assert client.portal is not None
        client.portal.call(all_of_them)
    return statuses


def misses() -> float:
    return (
        REGISTRY.get_sample_value(
            "shorty_redirect_lookups_total", {"tier": "postgres", "result": "absent"}
        )
        or 0.0
    )


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    """No access lines (10,000 of them would only fill the captured output)."""
    return settings.model_copy(update={"access_log": False})


def test_random_codes_and_methods_leave_every_label_set_bounded(quiet, clean):
    _, key = user_with_key(clean.database_url, "fuzz@example.com")
    rng = random.Random(17)
    to_redirect, to_api = requests(rng, "/"), requests(rng, "/api/v1/urls/")
    before, looked_up = label_sets(), misses()

    redirect = burst(create_redirect(quiet), to_redirect, [])
    auth = [(b"authorization", f"Bearer {key}".encode())]
    api = burst(create_api(quiet, provision=False), to_api, auth)

    after = label_sets()
    # The requests reached the hot path's lookups and the API's routes and limits.
    assert redirect == {404}
    assert misses() - looked_up > REQUESTS / 20
    assert {404, 405, 429} <= api
    grown = {name: after[name] - before.get(name, set()) for name in after}
    assert {name: len(new) for name, new in grown.items() if len(new) > MOST_NEW_SETS} == {}
    made_up = {verb for verb, _ in to_redirect + to_api} - set(METHODS)
    made_up |= {path.removeprefix("/api/v1/urls/") for _, path in to_api}
    made_up |= {path.removeprefix("/") for _, path in to_redirect}
    leaked = {
        (name, value)
        for name, new in grown.items()
        for labels in new
        for _, value in labels
        if value in made_up
    }
    assert leaked == set()
    methods = {dict(labels)["method"] for labels in grown["shorty_http_request_duration_seconds"]}
    assert "other" in methods  # every made-up method, under one name
