"""What the live view shows of one service, worked out from two scrapes of its
Prometheus metrics a second or so apart: rates are the counters' growth between
them, the p99 comes from the latency histogram's buckets that grew, as
Prometheus's ``histogram_quantile`` would."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
BREAKER_STATES = {0: "closed", 1: "open", 2: "half-open"}


@dataclass(frozen=True, slots=True)
class Scrape:
    at: float  # monotonic seconds
    samples: dict[str, list[tuple[Labels, float]]]

    def values(self, name: str, **match: str) -> list[tuple[Labels, float]]:
        return [
            (labels, value)
            for labels, value in self.samples.get(name, ())
            if all((key, want) in labels for key, want in match.items())
        ]

    def total(self, name: str, **match: str) -> float:
        return sum(value for _, value in self.values(name, **match))


def parse(text: str, at: float) -> Scrape:
    """The samples of a metrics page by name (ValueError if it is not one)."""
    samples: dict[str, list[tuple[Labels, float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, []).append((labels, sample.value))
    return Scrape(at, samples)


def rate(before: Scrape, now: Scrape, name: str, **match: str) -> float | None:
    """Per second, the growth of counter ``name`` (a restart's reset counts as none)."""
    seconds = now.at - before.at
    if seconds <= 0:
        return None
    return max(now.total(name, **match) - before.total(name, **match), 0.0) / seconds


def _buckets(scrape: Scrape, name: str, exclude: Iterable[tuple[str, str]]) -> dict[float, float]:
    skipped = set(exclude)
    by_bound: dict[float, float] = {}
    for labels, value in scrape.values(name + "_bucket"):
        if skipped & set(labels):
            continue
        bound = float(dict(labels)["le"])
        by_bound[bound] = by_bound.get(bound, 0.0) + value
    return by_bound


def quantile(
    before: Scrape,
    now: Scrape,
    name: str,
    q: float,
    exclude: Iterable[tuple[str, str]] = (),
) -> float | None:
    """The ``q`` quantile of what histogram ``name`` observed between the scrapes
    (None when it observed nothing), interpolated within its bucket."""
    old, new = _buckets(before, name, exclude), _buckets(now, name, exclude)
    grown = sorted((bound, max(new[bound] - old.get(bound, 0.0), 0.0)) for bound in new)
    if not grown or grown[-1][1] <= 0:
        return None
    wanted = q * grown[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in grown:
        if count >= wanted:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (wanted - below) / (count - below)
        lower, below = bound, count
    return lower


def breakers(scrape: Scrape) -> dict[str, str]:
    """Each dependency's breaker state, from ``shorty_breaker_state``."""
    return {
        dict(labels).get("dependency", "?"): BREAKER_STATES.get(int(value), "?")
        for labels, value in scrape.values("shorty_breaker_state")
    }


def chaos(scrape: Scrape) -> list[str]:
    """The fault injections in force in the process ("redis outage", ...)."""
    return sorted(
        f"{dict(labels).get('dependency', '?')} {dict(labels).get('kind', '?')}"
        for labels, value in scrape.values("shorty_chaos_active")
        if value >= 1
    )
