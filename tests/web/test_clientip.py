import ipaddress

import pytest

from shorty.web.clientip import client_ip

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def scope(peer, *forwarded):
    return {
        "client": (peer, 1234),
        "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.1", [], "198.51.100.1"),
        ("198.51.100.1", ["1.2.3.4"], "198.51.100.1"),  # untrusted peer: header ignored
        ("10.0.0.5", ["203.0.113.9"], "203.0.113.9"),
        ("10.0.0.5", ["1.1.1.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),  # rightmost untrusted
        ("10.0.0.5", ["1.1.1.1", "203.0.113.9"], "203.0.113.9"),  # several headers
        ("10.0.0.5", ["10.0.0.9, 10.0.0.8"], "10.0.0.9"),  # all trusted: the first
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["not-an-ip"], "10.0.0.5"),
        ("fd00::1", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_client_ip(peer, forwarded, expected):
    assert client_ip(scope(peer, *forwarded), PROXIES) == expected


def test_no_proxies_configured_means_the_peer():
    assert client_ip(scope("10.0.0.5", "203.0.113.9"), []) == "10.0.0.5"
