"""Click capture: batches, shutdown flush, and a bounded buffer while Redis is away."""

import pytest
import redis
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from shorty import embedded
from shorty.bootstrap import DEPS
from shorty.core.bots import is_bot
from shorty.redirect.app import create_app
from shorty.redirect.clicks import STREAM, visitor_hash
from tests.conftest import ROOT
from tests.redirect.helpers import add_link, lookups


def dropped():
    return REGISTRY.get_sample_value("shorty_clicks_dropped_total") or 0


def test_buffer_is_flushed_on_shutdown(settings, clean):
    add_link(clean.database_url, "flushme")
    stream = redis.Redis.from_url(clean.redis_url)
    slow = settings.model_copy(update={"click_flush_interval": 60, "click_batch": 10_000})
    with TestClient(create_app(slow), follow_redirects=False) as client:
        for _ in range(237):
            assert client.get("/flushme").status_code == 302
        assert stream.xlen(STREAM) == 0  # nothing written yet: all waiting in memory
        assert len(client.app_state[DEPS].clicks) == 237
    assert stream.xlen(STREAM) == 237
    stream.close()


def test_the_buffer_gauge_shows_the_clicks_waiting_between_flushes(settings, clean):
    # A SIGKILL loses what waits; the last scrape must show it, not the size at the
    # last flush (which read 0 while 237 clicks waited).
    add_link(clean.database_url, "gauged")
    slow = settings.model_copy(update={"click_flush_interval": 60, "click_batch": 10_000})
    with TestClient(create_app(slow), follow_redirects=False) as client:
        for _ in range(237):
            assert client.get("/gauged").status_code == 302
        assert REGISTRY.get_sample_value("shorty_click_buffer_size") == 237
    assert REGISTRY.get_sample_value("shorty_click_buffer_size") == 0  # flushed at shutdown


def test_full_batches_go_out_without_waiting_for_the_interval(settings, clean):
    add_link(clean.database_url, "batched")
    stream = redis.Redis.from_url(clean.redis_url)
    batched = settings.model_copy(update={"click_flush_interval": 60, "click_batch": 50})
    with TestClient(create_app(batched), follow_redirects=False) as client:
        for _ in range(120):
            client.get("/batched")
        for _ in range(100):  # bounded wait: 2 s
            if stream.xlen(STREAM) == 100:
                break
            client.portal.call(__import__("anyio").sleep, 0.02)
        assert stream.xlen(STREAM) == 100  # two full batches; 20 still waiting
    assert stream.xlen(STREAM) == 120
    stream.close()


def test_a_malformed_click_is_dropped_not_retried_with_its_batch(settings, clean):
    """A value holding a separator (click_of keeps them out; ClickBuffer.add takes any
    tuple) is one dropped click: the rest of its batch is written, nothing goes back."""
    add_link(clean.database_url, "framed")
    stream = redis.Redis.from_url(clean.redis_url)
    slow = settings.model_copy(update={"click_flush_interval": 60, "click_batch": 10_000})
    before = dropped()
    with TestClient(create_app(slow), follow_redirects=False) as client:
        assert client.get("/framed").status_code == 302
        clicks = client.app_state[DEPS].clicks
        good = clicks._clicks[0]
        clicks.add((*good[:4], "agent\x1fwith a separator", *good[5:]))
        assert client.portal.call(clicks.flush) == 2
        assert len(clicks) == 0  # nothing put back to fail again
    assert stream.xlen(STREAM) == 1  # the good click
    assert dropped() - before == 1
    stream.close()


@pytest.fixture
def own_redis():
    """A Redis server of our own, so the test can stop it."""
    data_dir = ROOT / ".shorty-data" / "test-redis-stop"
    server, url = embedded.start_redis(data_dir)
    yield server, url
    server._cleanup()


def test_redis_stopping_mid_test(settings, clean, own_redis):
    server, url = own_redis
    add_link(clean.database_url, "warmed")
    add_link(clean.database_url, "coldone")
    config = settings.model_copy(
        update={
            "redis_url": settings.redis_url.__class__(url),
            "click_buffer": 100,
            "redis_timeout": 0.2,
            # Nothing is written before Redis stops, so the count below is exact.
            "click_flush_interval": 60,
            "click_batch": 10_000,
        }
    )
    before = dropped()
    with TestClient(create_app(config), follow_redirects=False) as client:
        assert client.get("/warmed").status_code == 302
        server.shutdown(nosave=True)  # redis-py takes the dropped connection as success
        # Cached link (LRU) and uncached one (PostgreSQL) both still redirect.
        lru_hits = lookups("lru", "hit")
        assert client.get("/warmed").status_code == 302
        assert lookups("lru", "hit") == lru_hits + 1
        assert client.get("/coldone").status_code == 302
        for _ in range(150):
            assert client.get("/warmed").status_code == 302
        buffer = client.app_state[DEPS].clicks
        assert len(buffer) <= 100
        # Every click is either still waiting or counted as dropped; none vanished.
        assert (len(buffer), buffer.dropped) == (100, 53)
        # Now let it try (and fail) to write while Redis is away: clicks taken for a
        # write go back to the front; none is lost without being counted.
        buffer.interval, buffer.batch = 0.02, 10
        for _ in range(20):
            assert client.get("/warmed").status_code == 302
        client.portal.call(__import__("anyio").sleep, 0.3)
        assert len(buffer) == 100
        assert buffer.dropped == 73
    assert dropped() - before >= 73


def test_bot_detection():
    assert is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    assert is_bot("facebookexternalhit/1.1")
    assert is_bot("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)")
    assert is_bot("curl/8.5.0")
    assert is_bot("")
    assert not is_bot(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"
    )
    assert not is_bot("Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0")


def test_visitor_hash_is_salted_and_rotates_daily():
    day = 86_400_000
    one = visitor_hash(b"secret", "203.0.113.7", "UA", 10 * day + 5)
    assert one == visitor_hash(b"secret", "203.0.113.7", "UA", 10 * day + 999)
    assert one != visitor_hash(b"secret", "203.0.113.7", "UA", 11 * day)
    assert one != visitor_hash(b"other", "203.0.113.7", "UA", 10 * day)
    assert one != visitor_hash(b"secret", "203.0.113.8", "UA", 10 * day)
    assert len(one) == 16
    assert int(one, 16) >= 0  # hex, nothing of the address in clear


def test_bot_detection_spares_people():
    assert not is_bot("Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Mobile")
    assert not is_bot("Mozilla/5.0 (Linux; Android 13) Mobile Telegram-Android/10.0.0")
    assert is_bot("TelegramBot (like TwitterBot)")
