import ipaddress

from starlette.testclient import TestClient

from shorty.redirect.app import create_app
from tests.redirect.test_follow import add_link


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
