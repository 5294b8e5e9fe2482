"""Micro-benchmark of the pure domain functions on the write path.

Prints operations per second and microseconds per call for each function, and
writes the same figures to bench/results/core.json. Figures only; no target
is asserted here.
"""

from __future__ import annotations

import json
import platform
import timeit
from datetime import UTC, datetime
from pathlib import Path

from shorty.core.codes import generate_code, validate_alias
from shorty.core.targets import Origin, normalize_target

OWN = (Origin("sho.rt"),)
CASES = {
    "generate_code(7)": lambda: generate_code(7),
    "validate_alias": lambda: validate_alias("launch-2026"),
    "normalize_target ascii": lambda: normalize_target("https://example.com/a/b?c=d", OWN),
    "normalize_target idna": lambda: normalize_target("https://bücher.de/straße?x=1", OWN),
}


def measure(func: object, repeat: int = 5) -> float:
    timer = timeit.Timer(func)  # type: ignore[arg-type]
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number


def main() -> None:
    rows = []
    for name, func in CASES.items():
        seconds = measure(func)
        rows.append(
            {"case": name, "ops_per_s": round(1 / seconds), "us_per_call": round(seconds * 1e6, 2)}
        )
    print(f"{'case':<26}{'ops/s':>12}{'µs/call':>10}")
    for row in rows:
        print(f"{row['case']:<26}{row['ops_per_s']:>12,}{row['us_per_call']:>10}")
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
