"""A write retried with its Idempotency-Key after PostgreSQL was lost under it (issue
#14: retries idempotent, no acknowledged write lost).

The first request claims its key, then PostgreSQL stops answering before the link is
made: the answer is 503 "retry in a few seconds". The claim, the link and the answer
belong to one transaction (``store/idempotency.py``), which PostgreSQL rolls back
once it hears that the connection is gone: the retry with the key makes the link,
once. Before, the claim was committed on its own and could not be released while
PostgreSQL was away: every retry answered 409 `idempotency-key-in-progress` until
the key expired a day later."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import asyncpg
from starlette.testclient import TestClient

from shorty.api.app import create_app as create_api
from tests.chaos.helpers import settings_for, through, timed
from tests.helpers import bearer, query, user_with_key, waiting_on_a_lock

DB_TIMEOUT = 1.0
# The first request's deadline: its query's (DB_TIMEOUT), then the rollback of the
# claim and the release of the connection, each bounded by a deadline of their own
# (the release drops a connection that does not answer), on a busy machine.
ANSWER_BOUND = 3 * DB_TIMEOUT + 1.5
# How long the retry may meet the claim still held: until PostgreSQL ends the
# transaction of the connection the first request gave up.
HELD_BOUND = 10.0


@contextlib.contextmanager
def locked(database_url: str, table: str) -> Iterator[None]:
    """``table`` locked against every other session (ACCESS EXCLUSIVE) for the block,
    from a connection of its own."""
    held, done = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():
                await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                held.set()
                await asyncio.to_thread(done.wait, 60)  # bounded: the test's own length
        finally:
            await conn.close()

    def run() -> None:
        try:
            asyncio.run(hold())
        except BaseException as exc:
            failure.append(exc)
            held.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert held.wait(10), "the lock was not taken"
        assert not failure, failure
        yield
    finally:
        done.set()
        thread.join(10)


async def wait_on_lock(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await waiting_on_a_lock(pool)
    finally:
        await pool.close()


def test_a_create_postgres_lost_midway_is_made_once_by_its_retry(clean, postgres_proxy):
    _, key = user_with_key(clean.database_url, "ada@example.com")
    settings = settings_for(
        clean,
        database_url=through(postgres_proxy, clean.database_url),
        db_timeout=DB_TIMEOUT,
        db_acquire_timeout=DB_TIMEOUT,
        # The breaker off: with it, the retries would meet 503 for its cool-down first
        # (test_breaker.py); here the claim is what is looked at.
        db_breaker_cooldown=0,
    )
    headers = {**bearer(key), "Idempotency-Key": "retry-me"}
    body = {"target": "https://example.com/retry-me"}
    with TestClient(create_api(settings), raise_server_exceptions=False) as client:
        post = lambda: client.post("/api/v1/shorten", json=body, headers=headers)  # noqa: E731
        with locked(clean.database_url, "urls"), ThreadPoolExecutor(1) as caller:
            first = caller.submit(timed, post)
            # The link's INSERT waits on the lock, the key claimed: PostgreSQL stops
            # answering now.
            asyncio.run(wait_on_lock(clean.database_url))
            postgres_proxy.pause()
            try:
                answer, elapsed = first.result(15)
            finally:
                postgres_proxy.resume()
        print(f"first request: {answer.status_code} after {elapsed:.2f} s")
        assert answer.status_code == 503, answer.text
        assert answer.json()["type"].endswith("/service-unavailable")
        assert elapsed < ANSWER_BOUND

        # PostgreSQL is back. The retry may meet the claim held (409) until PostgreSQL
        # rolls back the abandoned transaction; then the key is free and it creates.
        back = time.monotonic()
        statuses = []
        while True:
            retry = post()
            statuses.append(retry.status_code)
            if retry.status_code != 409 or time.monotonic() > back + HELD_BOUND:
                break
            assert retry.json()["type"].endswith("/idempotency-key-in-progress")
            time.sleep(0.1)
        print(
            f"retry: {statuses.count(409)} x 409 for {time.monotonic() - back:.2f} s,"
            f" then {statuses[-1]}"
        )
        assert retry.status_code == 201, (statuses, retry.text)
        assert "idempotent-replayed" not in retry.headers
        again = post()
        assert again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["code"] == retry.json()["code"]
    made = query(clean.database_url, "SELECT code FROM urls WHERE target = $1", body["target"])
    assert [row["code"] for row in made] == [retry.json()["code"]]
