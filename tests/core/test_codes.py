import itertools
import random
import secrets
import string

import pytest

from shorty.core import codes
from shorty.core.errors import InvalidAlias


def test_generated_code_is_base62_of_default_length():
    code = codes.generate_code()
    assert len(code) == codes.DEFAULT_LENGTH == 7
    assert set(code) <= set(string.ascii_letters + string.digits)


@pytest.mark.parametrize("length", [1, 5, 12, 32])
def test_generated_code_has_requested_length(length):
    assert len(codes.generate_code(length)) == length


def test_generate_code_rejects_non_positive_length():
    with pytest.raises(ValueError, match="positive"):
        codes.generate_code(0)


def test_default_source_is_the_os_csprng():
    # Codes must not be guessable from one another: the default draws from `secrets`.
    assert codes.generate_code.__defaults__ == (codes.DEFAULT_LENGTH, secrets.choice)


def test_codes_are_not_sequential_and_do_not_repeat():
    choice = random.Random(2026).choice
    drawn = [codes.generate_code(7, choice) for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)
    # No two consecutive codes share a prefix the way a counter would.
    shared = sum(a[:5] == b[:5] for a, b in itertools.pairwise(drawn))
    assert shared == 0


def test_every_base62_symbol_is_used_roughly_evenly():
    counts = dict.fromkeys(codes.BASE62, 0)
    choice = random.Random(7).choice
    for _ in range(3000):
        for ch in codes.generate_code(7, choice):
            counts[ch] += 1
    expected = 3000 * 7 / 62
    assert all(0.6 * expected < n < 1.4 * expected for n in counts.values())


def test_generate_code_uses_the_given_choice_function():
    rng = random.Random(7)
    assert codes.generate_code(6, rng.choice) == codes.generate_code(6, random.Random(7).choice)


@pytest.mark.parametrize("alias", ["abc", "my-link", "Launch_2026", "a" * 64, "9lives"])
def test_valid_aliases(alias):
    assert codes.validate_alias(alias) == alias


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("ab", "3 to 64"),
        ("a" * 65, "3 to 64"),
        ("has space", "only letters"),
        ("ünï", "only letters"),
        ("-dash", "start"),
        ("_under", "start"),
        ("a/b", "only letters"),
        ("a.b", "only letters"),
    ],
)
def test_invalid_aliases_say_why(alias, message):
    with pytest.raises(InvalidAlias, match=message):
        codes.validate_alias(alias)


@pytest.mark.parametrize(
    "alias", ["api", "admin", "static", "healthz", "metrics", "livez", "readyz", "API", "Admin"]
)
def test_reserved_words_are_refused_in_any_case(alias):
    with pytest.raises(InvalidAlias, match="reserved"):
        codes.validate_alias(alias)


@pytest.mark.parametrize(
    ("code", "ok"),
    [
        ("abc1234", True),
        ("my-link_2", True),
        ("ab", False),
        ("a" * 65, False),
        ("abc.def", False),
        ("abc/", False),
        ("ab%20", False),
        ("", False),
    ],
)
def test_well_formed_codes(code, ok):
    assert codes.is_well_formed(code) is ok
