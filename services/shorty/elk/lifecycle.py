"""How long Shorty's logs live: Elasticsearch time values (``14d``, ``36h``) and the
ILM policy with the retention and the warm phase's age substituted."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from shorty.elk import SetupError

# Elasticsearch's time units (TimeValue.parseTimeValue), in nanoseconds so that two
# values compare exactly. ILM's min_age takes no fractions.
NANOS = {
    "nanos": 1,
    "micros": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
    "d": 86400 * 10**9,
}
TIME_VALUE = re.compile(r"(\d+)(" + "|".join(NANOS) + r")")


@dataclass(frozen=True)
class TimeValue:
    text: str
    nanos: int

    def __str__(self) -> str:
        return self.text


def time_value(text: str) -> TimeValue:
    """``14d`` -> TimeValue; ValueError for anything Elasticsearch would not read as an
    age (``14``, ``2 weeks``, ``1.5d``)."""
    match = TIME_VALUE.fullmatch(text.strip())
    if match is None:
        units = ", ".join(NANOS)
        raise ValueError(f"{text!r} is not a time value: a whole number and a unit ({units})")
    number, unit = match.groups()
    return TimeValue(f"{int(number)}{unit}", int(number) * NANOS[unit])


@dataclass(frozen=True)
class Lifecycle:
    """Indices move to the warm phase ``warm_after`` their rollover and are deleted
    ``retention`` after it."""

    retention: TimeValue
    warm_after: TimeValue

    def __post_init__(self) -> None:
        if self.warm_after.nanos >= self.retention.nanos:
            raise ValueError(
                f"the warm phase ({self.warm_after}) must start before the retention "
                f"({self.retention}) ends"
            )


def ilm_policy(body: dict[str, Any], lifecycle: Lifecycle, file_name: str) -> dict[str, Any]:
    """The body of ``PUT _ilm/policy/shorty-logs``: the file's, with the delete phase's
    ``min_age`` set to the retention and the warm phase's to ``warm_after``."""
    policy = copy.deepcopy(body)
    phases = policy.get("policy", {}).get("phases")
    if not isinstance(phases, dict):
        raise SetupError(f"{file_name}: no policy.phases object")
    for phase, age in (("warm", lifecycle.warm_after), ("delete", lifecycle.retention)):
        if not isinstance(phases.get(phase), dict):
            raise SetupError(f"{file_name}: no policy.phases.{phase} object to set min_age in")
        phases[phase]["min_age"] = age.text
    return policy
