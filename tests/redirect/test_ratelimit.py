import ipaddress
from contextlib import contextmanager

import redis
from starlette.testclient import TestClient

from shorty.redirect.app import create_app
from shorty.redirect.clicks import STREAM
from tests.redirect.helpers import add_link


def test_rate_limit_per_client_ip_behind_a_trusted_proxy(settings, clean):
    add_link(clean.database_url, "popular")
    limited = settings.model_copy(
        update={
            "redirect_rate": 0.5,
            "redirect_burst": 2,
            "trusted_proxies": [ipaddress.ip_network("10.0.0.0/8")],
        }
    )
    with TestClient(
        create_app(limited), follow_redirects=False, client=("10.1.2.3", 4000)
    ) as proxy:
        alice = {"X-Forwarded-For": "198.51.100.1"}
        bob = {"X-Forwarded-For": "198.51.100.2"}
        assert [proxy.get("/popular", headers=alice).status_code for _ in range(2)] == [302, 302]
        refused = proxy.get("/popular", headers=alice)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "2"
        assert (
            proxy.get("/popular", headers={**alice, "Accept": "application/json"}).json()["status"]
            == 429
        )
        assert proxy.get("/popular", headers=bob).status_code == 302


def test_forwarded_for_from_an_untrusted_peer_is_ignored(settings, clean):
    add_link(clean.database_url, "popular")
    limited = settings.model_copy(update={"redirect_rate": 0.5, "redirect_burst": 1})
    with TestClient(
        create_app(limited), follow_redirects=False, client=("203.0.113.50", 4000)
    ) as client:
        assert client.get("/popular", headers={"X-Forwarded-For": "1.1.1.1"}).status_code == 302
        assert client.get("/popular", headers={"X-Forwarded-For": "2.2.2.2"}).status_code == 429


@contextmanager
def behind_a_proxy(settings, **limits):
    """``visit(address)``: a redirect of ``popular`` sent for ``address`` by a trusted
    proxy (X-Forwarded-For), with ``limits`` on the per-IP rate."""
    proxied = settings.model_copy(
        update={"trusted_proxies": [ipaddress.ip_network("10.0.0.0/8")], **limits}
    )
    with TestClient(
        create_app(proxied), follow_redirects=False, client=("10.1.2.3", 4000)
    ) as proxy:
        yield (
            lambda address: proxy.get("/popular", headers={"X-Forwarded-For": address}).status_code
        )


def test_ipv6_clients_share_a_bucket_per_64_but_stay_separate_visitors(settings, clean):
    """Issue #12 item 10: a host holding a /64 cannot walk around the per-IP limit by
    taking a fresh address per request; the visitor hash stays per address."""
    add_link(clean.database_url, "popular")
    with behind_a_proxy(settings, redirect_rate=0.5, redirect_burst=2) as visit:
        assert visit("2001:db8:1:2::a") == 302
        assert visit("2001:db8:1:2:ffff:ffff:ffff:fffe") == 302
        assert visit("2001:db8:1:2::c") == 429  # the same /64: its bucket is spent
        assert visit("2001:db8:1:3::a") == 302  # the next /64 is another client
    cache = redis.Redis.from_url(clean.redis_url)
    entries = cache.xrange(STREAM)  # the click buffer is flushed when the app stops
    cache.close()
    # Three redirects, three visitors: the two addresses of one /64 stay two people.
    assert len({fields[b"vh"] for _, fields in entries}) == 3


def test_the_ipv6_prefix_is_a_setting(settings, clean):
    add_link(clean.database_url, "popular")
    with behind_a_proxy(settings, redirect_rate=0.5, redirect_burst=1, ipv6_prefix=48) as visit:
        assert visit("2001:db8:1:2::a") == 302
        assert visit("2001:db8:1:3::a") == 429  # the same /48
        assert visit("2001:db8:2::a") == 302
