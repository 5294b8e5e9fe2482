"""The accounting proof: every redirect becomes exactly one click in PostgreSQL.

Two redirect replicas, a worker and a Redis of the test's own, all real
processes. While 10,000 redirects are served concurrently, the worker is
killed (SIGKILL) and started again, and Redis is restarted. Afterwards the
clicks table and ``click_count`` must both say exactly 10,000, link by link.
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import cycle

import redis

from shorty.worker.streams import DLQ
from tests.e2e.processes import RedisServer, Service, service_env
from tests.helpers import query, scalar

TOTAL = 10_000
CLIENTS = 16
CODES = [f"acct{i}" for i in range(8)]
KILL_WORKER_AT = 3_000
RESTART_REDIS_AT = 6_000


class Load:
    """``TOTAL`` GETs spread over the replicas and codes by ``CLIENTS`` threads, each
    with its own keep-alive connection per replica."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.done = 0
        self.sent: dict[str, int] = dict.fromkeys(CODES, 0)
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def client(self, index: int) -> None:
        conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for p in self.ports}
        plan = zip(cycle(self.ports), cycle(CODES[index % len(CODES) :] + CODES), strict=False)
        for _, (port, code) in zip(range(TOTAL // CLIENTS), plan, strict=False):
            try:
                conns[port].request("GET", f"/{code}", headers={"User-Agent": f"load/{index}"})
                response = conns[port].getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                conns[port].close()
            with self._lock:
                if status == 302:
                    self.sent[code] += 1
                else:
                    self.failures.append(f"{code} on {port}: {status}")
                self.done += 1
        for conn in conns.values():
            conn.close()


def test_every_redirect_is_counted_once_through_a_worker_kill_and_a_redis_restart(clean, tmp_path):
    assert TOTAL % CLIENTS == 0
    for code in CODES:
        query(
            clean.database_url,
            "INSERT INTO urls (code, target) VALUES ($1, 'https://example.com')",
            code,
        )
    store = RedisServer(tmp_path / "redis")
    store.start()
    # Claim a dead worker's entries after 2 s instead of a minute.
    env = service_env(clean.database_url, store.url, SHORTY_CLAIM_IDLE="2")
    logs = tmp_path / "services.log"
    replicas = [Service("redirect", env, logs) for _ in range(2)]
    worker = Service("worker", env, logs)
    load = Load([replica.port for replica in replicas])
    events: list[str] = []
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            running = [pool.submit(load.client, i) for i in range(CLIENTS)]
            while load.done < KILL_WORKER_AT and not all(r.done() for r in running):
                time.sleep(0.01)
            worker.kill()
            events.append(f"worker killed after {load.done}")
            worker = Service("worker", env, logs)
            while load.done < RESTART_REDIS_AT and not all(r.done() for r in running):
                time.sleep(0.01)
            store.stop()
            events.append(f"redis stopped after {load.done}")
            time.sleep(0.3)  # redirects go on meanwhile, their clicks wait in memory
            store.start()
            events.append(f"redis back after {load.done}")
            for future in running:
                future.result()
        assert load.failures == []
        assert sum(load.sent.values()) == TOTAL
        assert load.done > RESTART_REDIS_AT, events  # both faults struck mid-run
        # The replicas write what they still hold when stopped, as in a rolling update.
        for replica in replicas:
            replica.stop()

        counted = None
        for _ in range(600):  # bounded: 60 s for the worker to drain the stream
            counted = scalar(clean.database_url, "SELECT sum(click_count) FROM urls")
            if counted == TOTAL:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # anything counted twice would show now
        per_link = query(
            clean.database_url,
            "SELECT code, click_count, (SELECT count(*) FROM clicks c WHERE c.url_id = u.id)"
            " FROM urls u ORDER BY code",
        )
        assert {r[0]: (r[1], r[2]) for r in per_link} == {
            code: (n, n) for code, n in sorted(load.sent.items())
        }, events
        assert scalar(clean.database_url, "SELECT count(*) FROM clicks") == TOTAL
        rolled = "SELECT sum(clicks) FROM click_rollups WHERE dimension = ''"
        for _ in range(100):  # bounded: 10 s for the worker's aggregator to roll them up
            if scalar(clean.database_url, rolled) == TOTAL:
                break
            time.sleep(0.1)
        time.sleep(1.5)  # a step past the interval: anything rolled up twice would show now
        assert scalar(clean.database_url, rolled) == TOTAL
        check = redis.Redis.from_url(store.url)
        assert check.xlen(DLQ) == 0
        check.close()
    finally:
        for service in [*replicas, worker]:
            if service.process.poll() is None:
                service.kill()
        store.kill()
