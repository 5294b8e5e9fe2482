import pytest

from shorty.core.errors import InvalidTarget
from shorty.core.targets import MAX_LENGTH, Origin, TargetRules, merge_query, normalize_target

# The form of URLs, tested with private addresses allowed (their refusal is tested below).
OWN = TargetRules(own=(Origin("sho.rt", None), Origin("localhost", 8080)), allow_private=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM/Path?q=1#frag", "https://example.com/Path?q=1#frag"),
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
        ("  http://example.com/x  ", "bad-characters"),
        ("http://example.com/x\n", "bad-characters"),
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


# Issue #12 item 2: every spelling of a host is the host.

LOCAL = TargetRules(own=(Origin("127.0.0.1", 8080),), allow_private=True)


@pytest.mark.parametrize(
    "raw",
    [
        "http://127.0.0.1:8080/x",
        "http://127.1:8080/x",
        "http://2130706433:8080/x",
        "http://0x7f.1:8080/x",
        "http://0177.0.0.1:8080/x",
        "http://0x7f000001:8080/x",
        "http://[::ffff:127.0.0.1]:8080/x",
        "http://[::ffff:7f00:1]:8080/x",
        "http://localhost:8080/x",
        "http://LOCALHOST.:8080/x",
        "http://app.localhost:8080/x",
        "http://127.0.0.2:8080/x",
        "http://[::1]:8080/x",
        "http://0.0.0.0:8080/x",
        "http://%31%32%37.0.0.1:8080/x",
        "http://127\u3002\u0030.0.1:8080/x",
    ],
)
def test_every_spelling_of_this_machine_is_the_own_host(raw):
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(raw, LOCAL)
    assert caught.value.reason == "own-host"


def test_this_machine_on_another_port_is_another_service():
    assert normalize_target("http://127.1:9000/x", LOCAL) == "http://127.0.0.1:9000/x"


@pytest.mark.parametrize("dot", ["\u3002", "\uff0e", "\uff61", "."])
def test_a_trailing_dot_of_any_kind_is_the_same_host(dot):
    rules = TargetRules(own=(Origin("sho.rt"),), blocked=frozenset({"evil.com"}))
    for raw, reason in [
        (f"https://evil.com{dot}/x", "blocked-domain"),
        (f"https://www.evil{dot}com{dot}/x", "blocked-domain"),
        (f"https://sho{dot}rt{dot}/x", "own-host"),
    ]:
        with pytest.raises(InvalidTarget) as caught:
            normalize_target(raw, rules)
        assert caught.value.reason == reason, raw


@pytest.mark.parametrize("raw", ["https://evil.com../x", "https://evil..com/x", "https://./x"])
def test_empty_labels_are_refused(raw):
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(raw)
    assert caught.value.reason == "bad-host"


@pytest.mark.parametrize(
    "raw",
    [
        "http://localhost/",
        "http://foo.localhost/",
        "http://127.0.0.1/",
        "http://127.1/",
        "http://2130706433/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.10:3000/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://[fe80::1]/",
        "http://[fd12:3456::1]/",
        "http://100.64.0.1/",
        "http://[2002:c0a8:101::]/",  # 6to4 around 192.168.1.1
        "http://[64:ff9b::a00:1]/",  # NAT64 around 10.0.0.1
        "http://224.0.0.1/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://printer.local/",
        "http://router.home.arpa/",
        # Found by a review: local-use NAT64, IPv4-translated, newer special blocks,
        # names of one label (resolved through the visitor's search domains).
        "http://[64:ff9b:1::7f00:1]/x",
        "http://[::ffff:0:7f00:1]/",
        "http://[3fff::1]/",
        "http://[5f00::1]/",
        "http://metadata/computeMetadata/v1/",
        "http://intranet/",
    ],
)
def test_private_targets_are_refused_by_default(raw):
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(raw)
    assert caught.value.reason == "private-address"
    assert normalize_target(raw, TargetRules(allow_private=True))


@pytest.mark.parametrize(
    "raw",
    ["http://8.8.8.8/", "http://[2606:4700:4700::1111]/", "https://local.example.com/"],
)
def test_public_addresses_and_names_are_fine(raw):
    assert normalize_target(raw) == raw


@pytest.mark.parametrize(
    "host",
    [
        "\u0430pple.com",  # Cyrillic a + Latin pple
        "xn--pple-43d.com",  # the same, as sent in A-labels
        "p\u0430yp\u0430l.com",
        "\u03c0aypal.com",  # Greek pi + Latin
        "g\u043e\u043egle.com",
    ],
)
def test_mixed_script_labels_are_confusable(host):
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(f"https://{host}/")
    assert caught.value.reason == "confusable-host"
    assert normalize_target(f"https://{host}/", TargetRules(allow_confusable=True))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://bücher.de/", "https://xn--bcher-kva.de/"),
        ("https://例え.jp/", "https://xn--r8jz45g.jp/"),
        ("https://テストabc.jp/", "https://xn--abc-4k4bocn.jp/"),  # Latin + Japanese
        ("https://ευρωπη.eu/", "https://xn--qxae0adtz.eu/"),  # all Greek
        ("https://москва.рф/", "https://xn--80adxhks.xn--p1ai/"),  # all Cyrillic
        ("https://한국abc.kr/", "https://xn--abc-lt8lk11n.kr/"),  # Latin + Korean
    ],
)
def test_single_script_and_cjk_with_latin_are_fine(raw, expected):
    assert normalize_target(raw) == expected


def test_parsers_that_disagree_on_the_host_are_refused():
    with pytest.raises(InvalidTarget) as caught:
        normalize_target("https://evil.com\\.good.com/")
    assert caught.value.reason in {"ambiguous", "bad-host"}


def test_merge_query_keeps_pieces_as_sent():
    from shorty.core.targets import merge_query

    assert (
        merge_query("https://a.example/?x=1&y=2", "y=3&q=%ff&a", override=True)
        == "https://a.example/?x=1&y=3&q=%ff&a"
    )
    assert (
        merge_query("https://a.example/?x=1&y=2", "y=3&q=%ff&a")
        == "https://a.example/?x=1&y=2&q=%ff&a"
    )
    assert (
        merge_query("https://a.example/p", "utm_source=mail")
        == "https://a.example/p?utm_source=mail"
    )
    assert merge_query("https://a.example/p?keep=%2F", "") == "https://a.example/p?keep=%2F"
    assert merge_query("https://a.example/", "a+b=1") == "https://a.example/?a+b=1"


@pytest.mark.parametrize(
    "raw",
    [
        "http://1.2.3.4/",
        "http://[64:ff9b::1.2.3.4]/",
        "http://[::1.2.3.4]/",
        "http://[2002:102:304::]/",
        "http://[::ffff:1.2.3.4]/",
        "http://0x01020304/",
    ],
)
def test_a_blocked_address_is_blocked_inside_ipv6_too(raw):
    """A review reached a blocked 1.2.3.4 through the IPv6 forms that carry it."""
    rules = TargetRules(blocked=frozenset({"1.2.3.4"}), allow_private=True)
    with pytest.raises(InvalidTarget) as caught:
        normalize_target(raw, rules)
    assert caught.value.reason == "blocked-domain"


@pytest.mark.parametrize(
    "visitor",
    [
        "a.b=evil",
        "A_B=evil",
        "a%20b=evil",
        "a_b[]=evil",
        "%20a_b=evil",
        "NEXT=//evil",
        "x=1;next=evil",
    ],
)
def test_append_knows_a_name_however_it_is_spelt(visitor):
    """A review passed a.b=evil to a target holding a_b (PHP reads both as a_b, and
    the visitor's comes last). In append mode such pieces are dropped."""
    target = "https://example.com/p?next=/safe&a_b=1"
    assert merge_query(target, visitor) == target
    assert merge_query(target, visitor + "&lang=de") == target + "&lang=de"
    assert merge_query(target, "UTM_Source=mail") == target + "&UTM_Source=mail"
