"""Micro-benchmark of the pieces a request is made of.

The write path's domain rules, and each part of a redirect beyond the lookup
(what docs/performance.md's "where the time goes" is built from). Prints
operations per second and microseconds per call, and writes the same figures
to bench/results/core.json. Figures only; no target is asserted here.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

from lru import LRU

from bench import tracing
from shorty.cache.links import CachedLink
from shorty.core.codes import generate_code, is_well_formed, validate_alias
from shorty.core.targets import Origin, TargetRules, normalize_target
from shorty.obs.accesslog import AccessLog
from shorty.obs.metrics import LOOKUPS, REQUEST_SECONDS
from shorty.redirect.clicks import click_fields, click_of, next_click_id
from shorty.web.clientip import client_ip
from shorty.web.shedding import Bound

OWN = TargetRules(own=(Origin("sho.rt"),))
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
HEADERS = [
    (b"host", b"sho.rt"),
    (b"user-agent", UA.encode()),
    (b"referer", b"https://news.example/x"),
]
ACCESS = AccessLog("bench")
LINK = CachedLink(1, "https://example.com/landing").fields()
# As redirect/resolve.py keeps it: (fresh until, stale until, fields).
MEMORY: LRU[str, tuple[float, float, tuple[object, ...]]] = LRU(100_000)
MEMORY["abcdefg"] = (1e18, 1e18, LINK)
HISTOGRAM = REQUEST_SECONDS.labels("bench", "/{code}", "GET", "302")
COUNTER = LOOKUPS.labels("bench", "hit")
BOUND = Bound("bench", 1000)


def _bounded() -> None:
    """What the redirect service's outer layer adds per request (redirect/app.py)."""
    bound = BOUND
    if bound.busy >= bound.limit:
        return
    bound.busy += 1
    try:
        pass
    finally:
        bound.busy -= 1


def _access_line() -> None:
    ACCESS.write(
        method="GET",
        path="/abcdefg",
        status=302,
        seconds=0.000_08,
        request_id="0123456789abcdef0123456789abcdef",
        user_agent=UA,
        client=None,
    )


def _redirect_line() -> None:
    ACCESS.write_known(
        1_767_225_600.123, "GET", "/abcdefg", 302, 0.000_08, "0123456789abcdef0123456789abcdef", UA
    )


CASES = {
    "generate_code(7)": lambda: generate_code(7),
    "validate_alias": lambda: validate_alias("launch-2026"),
    "normalize_target ascii": lambda: normalize_target("https://example.com/a/b?c=d", OWN),
    "normalize_target idna": lambda: normalize_target("https://bücher.de/straße?x=1", OWN),
    "redirect: is_well_formed": lambda: is_well_formed("abcdefg"),
    "redirect: client_ip": lambda: client_ip(
        {"client": ("203.0.113.9", 1), "headers": HEADERS}, []
    ),
    "redirect: LRU hit": lambda: CachedLink(*MEMORY["abcdefg"][2]),  # type: ignore[arg-type]
    "redirect: click_fields": lambda: click_fields("abcdefg", 1, HEADERS, "203.0.113.9", 1, b"k"),
    "redirect: click_of": lambda: click_of(
        "abcdefg", 1, 1, b"https://news.example/x", UA, "203.0.113.9", b"k", "0123abcd"
    ),
    "redirect: click id": next_click_id,
    "access line (write)": _access_line,
    "redirect: access line (write_known)": _redirect_line,
    "redirect: histogram": lambda: HISTOGRAM.observe(0.000_08),
    "redirect: counter": COUNTER.inc,
    "redirect: shed bound": _bounded,
    **tracing.CASES,  # tracing on: the redirect's span hook, unsampled and sampled
}


def measure(func: object, repeat: int = 5) -> float:
    timer = timeit.Timer(func)  # type: ignore[arg-type]
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number


def main() -> None:
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 - access lines go here
    rows = []
    for name, func in CASES.items():
        seconds = measure(func)
        rows.append(
            {"case": name, "ops_per_s": round(1 / seconds), "us_per_call": round(seconds * 1e6, 2)}
        )
    ACCESS.flush()
    sys.stdout.close()
    sys.stdout = stdout
    print(f"{'case':<38}{'ops/s':>12}{'µs/call':>10}")
    for row in rows:
        print(f"{row['case']:<38}{row['ops_per_s']:>12,}{row['us_per_call']:>10}")
    results = Path(__file__).with_name("results")
    results.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rows": rows,
    }
    (results / "core.json").write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
