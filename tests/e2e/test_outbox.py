"""The outbox holds: a link deleted while Redis is down stops redirecting on every
replica within 4 s of Redis coming back (the worker's Redis breaker cool-down,
2 s by default, then a relay step), though the API could not tell anyone."""

from __future__ import annotations

import http.client
import json
import time

import redis

from shorty.cache.links import _ABSENT, KEY
from shorty.worker.events import EVENTS
from tests.e2e.processes import RedisServer, Service, get, service_env
from tests.helpers import user_with_key

BACK_WITHIN = 4.0  # SHORTY_REDIS_BACKOFF (2 s) + a probe and a relay step, with room


def api_call(port: int, method: str, path: str, key: str, body: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def settled(url: str) -> None:
    """Wait until the cache group has applied every published link event."""
    client = redis.Redis.from_url(url)
    try:
        for _ in range(100):  # bounded: 10 s
            last = client.xrevrange(EVENTS, count=1)
            groups = client.xinfo_groups(EVENTS) if last else []
            done = [
                g
                for g in groups
                if g["name"] == b"cache"
                and g["pending"] == 0
                and g["last-delivered-id"] == last[0][0]
            ]
            if done:
                return
            time.sleep(0.1)
        raise AssertionError("the link events were not applied")
    finally:
        client.close()


def test_a_link_deleted_while_redis_is_down_stops_redirecting_once_it_is_back(clean, tmp_path):
    _, key = user_with_key(clean.database_url, "ops@example.com")
    store = RedisServer(tmp_path / "redis")
    store.start()
    env = service_env(clean.database_url, store.url)
    logs = tmp_path / "services.log"
    api = Service("api", env, logs)
    replicas = [Service("redirect", env, logs) for _ in range(2)]
    worker = Service("worker", env, logs)
    services = [api, *replicas, worker]
    try:
        status, _ = api_call(
            api.port, "POST", "/api/v1/shorten", key, {"target": "https://e.com", "alias": "gone"}
        )
        assert status == 201
        settled(store.url)  # the creation event applied: nothing will drop the copies below
        for replica in replicas:  # each replica now holds the link in its memory
            assert get(replica.port, "/gone")[0] == 302

        cache = redis.Redis.from_url(store.url)
        # Redis holds a copy too; it saves it and loads it again across the restart.
        assert cache.get(KEY.format("gone")) is not None
        cache.close()
        store.stop()
        status, body = api_call(api.port, "DELETE", "/api/v1/urls/gone", key)
        assert status == 204, body
        time.sleep(0.5)
        # Nobody could be told: the replicas still answer from memory.
        assert [get(r.port, "/gone")[0] for r in replicas] == [302, 302]

        store.start()
        back = time.monotonic()
        cache = redis.Redis.from_url(store.url)
        stopped_at: dict[str, float] = {}
        while len(stopped_at) <= len(replicas) and time.monotonic() - back < 10:
            for replica in replicas:
                if str(replica.port) not in stopped_at and get(replica.port, "/gone")[0] == 404:
                    stopped_at[str(replica.port)] = time.monotonic() - back
            # Only the outbox can clear Redis's copy: the API never reached Redis. (A
            # replica that looked the code up since may have cached the miss.)
            if "redis" not in stopped_at and cache.get(KEY.format("gone")) in (None, _ABSENT):
                stopped_at["redis"] = time.monotonic() - back
            time.sleep(0.05)
        cache.close()
        assert len(stopped_at) == len(replicas) + 1, (stopped_at, logs.read_text()[-3000:])
        assert max(stopped_at.values()) <= BACK_WITHIN, stopped_at
        # And it stays gone (no stale copy written back from anywhere).
        time.sleep(0.5)
        assert [get(r.port, "/gone")[0] for r in replicas] == [404, 404]
    finally:
        for service in services:
            if service.process.poll() is None:
                service.kill()
        store.kill()
