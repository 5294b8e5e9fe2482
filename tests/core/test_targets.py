import pytest

from shorty.core.errors import InvalidTarget
from shorty.core.targets import MAX_LENGTH, Origin, normalize_target

OWN = (Origin("sho.rt", None), Origin("localhost", 8080))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM/Path?q=1#frag", "https://example.com/Path?q=1#frag"),
        ("  http://example.com/x  ", "http://example.com/x"),
        ("http://example.com:80/x", "http://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("https://bücher.de/straße", "https://xn--bcher-kva.de/stra%C3%9Fe"),
        ("https://example.com/über?q=ü#ä", "https://example.com/%C3%BCber?q=%C3%BC#%C3%A4"),
        ("https://例え.jp", "https://xn--r8jz45g.jp"),
        ("http://192.168.1.10:3000/", "http://192.168.1.10:3000/"),
        ("http://[2001:db8::1]/x", "http://[2001:db8::1]/x"),
        ("http://localhost:3000/", "http://localhost:3000/"),
        ("https://example.com./", "https://example.com/"),
    ],
)
def test_accepted_targets_are_normalized(raw, expected):
    assert normalize_target(raw, OWN) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("ftp://example.com/file", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,hi", "scheme"),
        ("example.com/no-scheme", "scheme"),
        ("https://user:pass@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("https:///path-only", "no-host"),
        ("https://exa mple.com", "bad-characters"),
        ("https://example.com/\x00", "bad-characters"),
        ("https://example.com:99999/", "malformed"),
        ("http://[::1/", "malformed"),
        ("https://-bad-.com/", "bad-host"),
        ("https://a..b/", "bad-host"),
        ("https://sho.rt/abc", "own-host"),
        ("http://SHO.RT:8443/abc", "own-host"),
        ("http://localhost:8080/abc", "own-host"),
        ("https://example.com/" + "a" * MAX_LENGTH, "too-long"),
    ],
)
def test_refused_targets_name_their_reason(raw, reason):
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(raw, OWN)
    assert caught.value.reason == reason
    assert caught.value.message.endswith(".")


def test_limit_is_2048_characters():
    base = "https://example.com/"
    assert normalize_target(base + "a" * (MAX_LENGTH - len(base)), OWN)
    with pytest.raises(InvalidTarget, match="2048"):
        normalize_target(base + "a" * (MAX_LENGTH - len(base) + 1), OWN)


def test_idna_growth_past_the_limit_is_refused():
    base = "https://ü.de/"  # the host grows to xn--tda.de
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(base + "a" * (MAX_LENGTH - len(base)), OWN)
    assert caught.value.reason == "too-long"


def test_own_host_on_another_port_is_allowed_when_port_pinned():
    assert normalize_target("http://localhost:3000/", OWN) == "http://localhost:3000/"


def test_no_own_origins_means_any_host():
    assert normalize_target("https://sho.rt/x") == "https://sho.rt/x"


def test_merge_query_keeps_pieces_as_sent():
    from shorty.core.targets import merge_query

    assert (
        merge_query("https://a.example/?x=1&y=2", "y=3&q=%ff&a")
        == "https://a.example/?x=1&y=3&q=%ff&a"
    )
    assert (
        merge_query("https://a.example/p", "utm_source=mail")
        == "https://a.example/p?utm_source=mail"
    )
    assert merge_query("https://a.example/p?keep=%2F", "") == "https://a.example/p?keep=%2F"
    assert merge_query("https://a.example/", "a+b=1") == "https://a.example/?a+b=1"
