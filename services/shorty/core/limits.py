"""Rate limits as people write them: ``120/minute``, ``10/s``, ``5000/day``, ``off``."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from shorty.core.errors import InvalidLimit

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86_400,
    "day": 86_400,
}
_LIMIT = re.compile(r"\s*(\d{1,9})\s*/\s*(\d{0,6})\s*([a-z]+)\s*")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``count`` requests per ``period`` seconds (a burst of ``count`` allowed)."""

    count: int
    period: int

    def __str__(self) -> str:
        return f"{self.count}/{self.period}s"

    @property
    def per_second(self) -> float:
        return self.count / self.period


@functools.lru_cache(maxsize=1024)  # read on every API request: the defaults and overrides
def parse_limit(text: str) -> Limit | None:
    """``None`` for ``off``/``0``; else a Limit, or InvalidLimit saying what is accepted."""
    if text.strip().lower() in {"off", "none", "0", ""}:
        return None
    match = _LIMIT.fullmatch(text.lower())
    unit = _UNITS.get(match.group(3)) if match else None
    if match is None or unit is None or int(match.group(1)) == 0:
        raise InvalidLimit(
            f"'{text}' is not a limit; write COUNT/UNIT like 120/minute, 10/s, 5000/day, "
            "or 300/15m (units: s, m, h, d), or 'off'."
        )
    multiple = int(match.group(2) or 1)
    if multiple == 0:
        raise InvalidLimit(f"'{text}': the period must be longer than zero.")
    return Limit(int(match.group(1)), multiple * unit)
