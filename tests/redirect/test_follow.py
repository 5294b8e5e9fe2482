from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from starlette.testclient import TestClient

from shorty.bootstrap import DEPS
from shorty.redirect.app import create_app
from shorty.redirect.clicks import STREAM
from shorty.web.problems import PROBLEM_BASE
from tests.redirect.helpers import add_link


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


def test_get_redirects_with_302_and_no_store(client, clean):
    add_link(clean.database_url, "abc1234")
    response = client.get("/abc1234")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/landing"
    assert response.headers["cache-control"] == "no-store"


def test_head_redirects_too(client, clean):
    add_link(clean.database_url, "abc1234")
    response = client.head("/abc1234")
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/landing"


@pytest.mark.parametrize(
    ("status", "cache_control"),
    [(301, "public, max-age=300"), (307, "no-store"), (308, "public, max-age=300")],
)
def test_per_link_redirect_type(client, clean, status, cache_control):
    add_link(clean.database_url, "typed", redirect_type=status)
    response = client.get("/typed")
    assert response.status_code == status
    assert response.headers["cache-control"] == cache_control


def test_permanent_redirects_are_cached_only_as_long_as_configured(settings, clean):
    """Item 5: a takedown must reach browsers and CDNs soon (SHORTY_PERMANENT_MAX_AGE)."""
    add_link(clean.database_url, "perm", redirect_type=308)
    short = settings.model_copy(update={"permanent_max_age": 60})
    with TestClient(create_app(short), follow_redirects=False) as client:
        assert client.get("/perm").headers["cache-control"] == "public, max-age=60"


def test_unknown_code_is_404_html_page(client):
    response = client.get("/nothere", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "Link not found" in response.text


def test_unknown_code_is_problem_json_for_programs(client):
    response = client.get("/nothere", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM_BASE + "link-not-found"


def test_expired_link_is_410(client, clean):
    add_link(clean.database_url, "old-one", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = client.get("/old-one")
    assert response.status_code == 410
    assert "expired" in response.text
    assert client.get("/old-one", headers={"Accept": "application/json"}).json()["status"] == 410


def test_disabled_and_exhausted_links_are_410(client, clean):
    add_link(clean.database_url, "off-one", disabled=True)
    add_link(clean.database_url, "used-up", max_clicks=2, click_count=2)
    assert client.get("/off-one").status_code == 410
    assert client.get("/used-up").status_code == 410


def test_link_expiring_later_still_redirects(client, clean):
    add_link(clean.database_url, "soon", expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert client.get("/soon").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/abc1234/",
        "/ab",
        "/abc.def",
        "/abc%20def",
        "/" + "a" * 65,
        "/a/b",
        "/../etc/passwd",
        "/..%2F..%2Fetc",
        "/%00abc",
        "/abc%00",
        "/caf%C3%A9",
        "/日本語コード",
    ],
)
def test_malformed_paths_are_404_without_a_lookup(client, clean, path):
    add_link(clean.database_url, "abc1234")
    resolver = client.app_state[DEPS].resolver
    looked_up = []

    def cached(code):
        looked_up.append(code)
        return resolver.cached(code)

    async def resolve(code):
        looked_up.append(code)
        return await resolver.resolve(code)

    spy = type("Spy", (), {"cached": staticmethod(cached), "resolve": staticmethod(resolve)})
    client.app_state[DEPS] = replace(client.app_state[DEPS], resolver=spy())
    assert client.get("/abc1234").status_code == 302  # the spy sees well-formed codes
    response = client.get(path)
    assert response.status_code == 404
    assert set(looked_up) == {"abc1234"}


def test_get_records_a_click_without_ip_head_does_not(settings, clean, cache):
    add_link(clean.database_url, "clicky")
    browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"
    with TestClient(create_app(settings), client=("203.0.113.7", 5000)) as client:
        client.get(
            "/clicky",
            headers={"Referer": "https://news.example.org/item?id=1", "User-Agent": browser},
        )
        client.head("/clicky")
        client.get("/clicky", headers={"User-Agent": "Slackbot-LinkExpanding 1.0"})
    entries = cache.xrange(STREAM)  # the buffer was flushed when the app stopped
    assert len(entries) == 2
    human, bot = (entry[1] for entry in entries)
    assert human[b"code"] == b"clicky"
    assert human[b"ref"] == b"news.example.org"
    assert human[b"ua"] == browser.encode()
    assert bot[b"ua"] == b"Slackbot-LinkExpanding 1.0"  # marked as a bot by the worker
    assert set(human) == {b"code", b"id", b"ts", b"ref", b"ua", b"vh", b"net", b"cid"}
    assert len(human[b"vh"]) == 16
    # Only the /24 network travels (for the country); the address itself never does.
    assert human[b"net"] == b"203.0.113.0"
    assert b"203.0.113.7" not in b"".join(human.values())


def test_redirects_survive_redis_being_unreachable(clean, settings_without_redis):
    add_link(clean.database_url, "sturdy")
    with TestClient(create_app(settings_without_redis), follow_redirects=False) as client:
        response = client.get("/sturdy")
        assert response.status_code == 302
        assert response.headers["location"] == "https://example.com/landing"
        assert client.get("/missing").status_code == 404


def test_query_is_forwarded_when_the_link_asks(client, clean):
    add_link(
        clean.database_url,
        "fwd",
        "https://shop.example/p?ref=link&utm_source=x",
        forward_query="append",
    )
    add_link(clean.database_url, "nofwd", "https://shop.example/p?ref=link")
    forwarded = client.get("/fwd?utm_source=mail&lang=de")
    assert (
        forwarded.headers["location"] == "https://shop.example/p?ref=link&utm_source=mail&lang=de"
    )
    assert client.get("/fwd").headers["location"] == "https://shop.example/p?ref=link&utm_source=x"
    assert (
        client.get("/nofwd?utm_source=mail").headers["location"]
        == "https://shop.example/p?ref=link"
    )


def test_a_visitor_cannot_replace_the_targets_parameters_unless_the_link_opts_in(client, clean):
    """Item 13: with forward_query "append" the target's own parameters stand (utm_*
    excepted); "override" lets the visitor's win."""
    target = "https://pay.example/checkout?amount=10&to=shop&utm_medium=x"
    add_link(clean.database_url, "pay", target, forward_query="append")
    add_link(clean.database_url, "free", target, forward_query="override")
    visit = "?amount=0&to=thief&utm_medium=mail&lang=de"
    assert client.get("/pay" + visit).headers["location"] == (
        "https://pay.example/checkout?amount=10&to=shop&utm_medium=mail&lang=de"
    )
    assert client.get("/free" + visit).headers["location"] == (
        "https://pay.example/checkout?amount=0&to=thief&utm_medium=mail&lang=de"
    )


@pytest.mark.parametrize(
    ("reason", "status", "slug"),
    [("abuse", 410, "link-blocked"), ("legal", 451, "unavailable-for-legal-reasons")],
)
def test_a_blocked_link_answers_410_or_451(client, clean, reason, status, slug):
    """Item 5: an admin's block, whatever the link's other fields say."""
    add_link(
        clean.database_url,
        "taken",
        blocked_reason=reason,
        blocked_at=datetime.now(UTC),
    )
    page = client.get("/taken")
    assert page.status_code == status
    assert "blocked" in page.text
    problem = client.get("/taken", headers={"Accept": "application/json"}).json()
    assert problem["type"] == PROBLEM_BASE + slug
    if status == 451:
        assert page.headers["link"] == '<https://sho.rt>; rel="blocked-by"'
    else:
        assert "link" not in page.headers


def test_click_limit_counts_gets_not_heads(client, clean):
    add_link(clean.database_url, "twice", max_clicks=2)
    assert client.head("/twice").status_code == 302
    assert client.get("/twice").status_code == 302
    assert client.head("/twice").status_code == 302
    assert client.get("/twice").status_code == 302
    assert client.get("/twice").status_code == 410
    assert client.head("/twice").status_code == 410


def test_click_limit_starts_from_the_stored_count(client, clean):
    add_link(clean.database_url, "almost", max_clicks=5, click_count=4)
    assert client.get("/almost").status_code == 302
    assert client.get("/almost").status_code == 410


def test_click_limit_without_redis_uses_the_stored_count(clean, settings_without_redis):
    add_link(clean.database_url, "limited", max_clicks=3, click_count=2)
    add_link(clean.database_url, "spent", max_clicks=3, click_count=3)
    with TestClient(create_app(settings_without_redis), follow_redirects=False) as client:
        assert client.get("/limited").status_code == 302
        assert client.get("/spent").status_code == 410


def test_location_is_ascii_for_unicode_targets(client, clean):
    add_link(clean.database_url, "uni", "https://example.com/%C3%BCber")
    assert client.get("/uni").headers["location"] == "https://example.com/%C3%BCber"


def test_click_limit_holds_under_concurrency(client, clean):
    from concurrent.futures import ThreadPoolExecutor

    add_link(clean.database_url, "scarce", max_clicks=5)
    with ThreadPoolExecutor(25) as pool:
        statuses = list(pool.map(lambda _: client.get("/scarce").status_code, range(50)))
    assert statuses.count(302) == 5
    assert statuses.count(410) == 45


def test_the_request_id_is_the_clicks_id_unless_the_caller_sent_one(settings, clean, cache):
    """One id names a redirect's access line, its X-Request-ID and its click; a caller's
    own X-Request-ID is kept for the first two, while the click keeps an id of ours (a
    caller must not choose how clicks are counted: the worker stores one per id)."""
    add_link(clean.database_url, "named")
    with TestClient(create_app(settings), follow_redirects=False) as client:
        ours = client.get("/named")
        theirs = client.get("/named", headers={"X-Request-ID": "req-42"})
        unsafe = client.get("/named", headers={"X-Request-ID": "bad id"})
    first, second, third = (entry[1][b"cid"].decode() for entry in cache.xrange(STREAM))
    assert ours.headers["x-request-id"] == first
    assert len(first) == 32
    assert int(first, 16)  # hex digits
    assert theirs.headers["x-request-id"] == "req-42"
    assert second not in ("req-42", first)
    assert unsafe.headers["x-request-id"] == third  # a refused id is replaced by ours


def test_request_ids_tell_nothing_of_each_other(settings, clean):
    """A redirect's X-Request-ID (its click's id) is random: ids that shared a prefix and
    counted up told anyone how many requests a pod served between two of theirs."""
    add_link(clean.database_url, "counted")
    with TestClient(create_app(settings), follow_redirects=False) as client:
        ids = [client.get("/counted").headers["x-request-id"] for _ in range(20)]
    assert len(set(ids)) == 20
    assert len({request_id[:16] for request_id in ids}) == 20  # no shared prefix


def test_an_error_in_the_redirect_is_a_500_problem_with_the_request_id(settings, clean, caplog):
    class Broken:
        def cached(self, code):
            raise RuntimeError("boom")

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.app_state[DEPS] = replace(client.app_state[DEPS], resolver=Broken())
        response = client.get("/abc1234", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-me"
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM_BASE + "internal-error"
    (record,) = [r for r in caplog.records if r.getMessage() == "unhandled error on GET /abc1234"]
    assert record.exc_info[1].args == ("boom",)
    assert record.__dict__["http.request.id"] == "trace-me"


def test_a_user_agent_with_the_batch_separators_is_stored_without_them(settings, clean, cache):
    """Clicks travel to Redis joined by RS and US (clickbuffer.py): a user agent holding
    them, quotes or backslashes lands in the stream as sent, those two characters
    excepted, and the clicks around it keep their own fields."""
    add_link(clean.database_url, "agents")
    odd = 'evil "agent" \\ \x1ex\x1fy'
    with TestClient(create_app(settings), follow_redirects=False) as client:
        for agent in ("plain/1.0", odd, "plain/2.0"):
            assert client.get("/agents", headers={"User-Agent": agent}).status_code == 302
    agents = [entry[1][b"ua"].decode() for entry in cache.xrange(STREAM)]
    assert agents == ["plain/1.0", 'evil "agent" \\  x y', "plain/2.0"]
