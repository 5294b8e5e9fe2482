"""The outage state behind serve-stale: one wait for PostgreSQL per recheck, not one
per request; one log line when an outage starts and one when it ends."""

import logging
import time

from shorty.redirect.outage import PostgresOutage

RECHECK = 0.05


def test_lookups_with_a_stale_copy_ask_postgres_once_per_recheck(caplog):
    caplog.set_level(logging.INFO, logger="shorty.redirect.outage")
    outage = PostgresOutage(stale_ttl=60, db_timeout=1.0, recheck=RECHECK)
    assert [outage.should_ask() for _ in range(2)] == [True, True]  # it answers: always ask
    outage.failed(TimeoutError())
    outage.failed(ConnectionRefusedError())  # the same outage: no second line
    assert [outage.should_ask() for _ in range(3)] == [False] * 3
    time.sleep(RECHECK * 2)
    # One lookup asks; the others keep serving stale while it waits (up to db_timeout).
    assert [outage.should_ask() for _ in range(3)] == [True, False, False]
    outage.failed(TimeoutError())  # it failed too
    assert not outage.should_ask()
    outage.served("redis")
    outage.served("lru")
    outage.answered()
    assert [outage.should_ask() for _ in range(2)] == [True, True]
    outage.answered()  # no outage: nothing to say
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0].startswith("PostgreSQL unavailable (TimeoutError): ")
    assert lines[1].startswith("PostgreSQL answers again after ")
    assert lines[1].endswith("; 2 lookups were served stale meanwhile")
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
