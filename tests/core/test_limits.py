import pytest

from shorty.core.errors import InvalidLimit
from shorty.core.limits import Limit, parse_limit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120/minute", Limit(120, 60)),
        ("10/s", Limit(10, 1)),
        ("5000/day", Limit(5000, 86_400)),
        ("300/15m", Limit(300, 900)),
        (" 7 / hour ", Limit(7, 3600)),
        ("1/2h", Limit(1, 7200)),
    ],
)
def test_parse(text, expected):
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["off", "OFF", "0", "none", ""])
def test_off(text):
    assert parse_limit(text) is None


@pytest.mark.parametrize("text", ["10", "ten/minute", "10/fortnight", "0/minute", "10/0s", "-1/s"])
def test_bad(text):
    with pytest.raises(InvalidLimit, match=r"COUNT/UNIT|longer than zero"):
        parse_limit(text)


def test_rate():
    assert Limit(120, 60).per_second == 2
