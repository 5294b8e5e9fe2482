import ipaddress

import pytest

from shorty.web.clientip import client_ip, rate_limit_key

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
        # An IPv4 peer of a server on both families (granian on ::): its IPv4 address.
        ("::ffff:198.51.100.1", [], "198.51.100.1"),
        ("::ffff:10.0.0.5", ["203.0.113.9"], "203.0.113.9"),
    ],
)
def test_client_ip(peer, forwarded, expected):
    assert client_ip(scope(peer, *forwarded), PROXIES) == expected


def test_no_proxies_configured_means_the_peer():
    assert client_ip(scope("10.0.0.5", "203.0.113.9"), []) == "10.0.0.5"


@pytest.mark.parametrize(
    ("address", "prefix", "key"),
    [
        ("198.51.100.7", 64, "198.51.100.7"),  # IPv4: the address itself
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", 64, "2001:db8:1:2::/64"),  # any spelling, one key
        ("2001:db8:1:3::1", 64, "2001:db8:1:3::/64"),  # the next /64: another key
        ("::ffff:198.51.100.7", 64, "198.51.100.7"),  # IPv4-mapped: its IPv4
        ("::ffff:198.51.100.7", 128, "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"),
        ("2001:db8:1:2:aaaa::1", 56, "2001:db8:1::/56"),
        ("2001:db8:1:2ff:aaaa::1", 56, "2001:db8:1:200::/56"),
        ("2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1/128"),
        ("fe80::1%eth0", 64, "fe80::/64"),  # a zone does not make another client
        ("testclient", 64, "testclient"),  # no address: kept as it is
        ("", 64, ""),
    ],
)
def test_rate_limit_key(address, prefix, key):
    assert rate_limit_key(address, prefix) == key
