"""Where a hot redirect's time goes: py-spy samples of `shorty serve redirect` under wrk,
every link in its LRU, as shares of the process's samples by part.

Seeds links as `python -m bench redirect` does, starts the service (--server),
warms its LRU, then samples it (py-spy, non-blocking) while wrk asks for random
codes. Each sample goes to the part of its innermost frame that names one (the
rules below: a file or a function); a sample caught in the event loop itself
(uvloop's C code: reading and writing sockets, running callbacks) is counted
apart. py-spy samples the wall clock: time in system calls counts, where valgrind
(`python -m bench instructions`) counts only the instructions the process runs.
The raw samples are kept in bench/results/profile-<server>.txt.

    python -m bench profile [--server uvicorn|granian] [--seconds 8] [--links 100000]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

from bench.redirect import HERE, RESULTS, seeded_stores, shorty_server
from bench.redirect import wrk as run_wrk

# (part, test on one frame as py-spy names it: "function (path/file.py:line)").
PARTS: list[tuple[str, Callable[[str], bool]]] = [
    ("histogram observe (prometheus_client)", lambda f: "observe (prometheus_client" in f),
    ("lookup counter (prometheus_client)", lambda f: "inc (prometheus_client" in f),
    ("prometheus_client, other", lambda f: "prometheus_client/" in f),
    ("access line (obs/accesslog.py)", lambda f: "obs/accesslog.py" in f),
    ("click record (redirect/clicks.py)", lambda f: "redirect/clicks.py" in f),
    ("click buffer and its batched writes", lambda f: "clickbuffer.py" in f or "redis/" in f),
    ("request log: recording, sampling", lambda f: "obs/requestlog.py" in f),
    ("LRU lookup (redirect/resolve.py)", lambda f: "redirect/resolve.py" in f),
    ("the redirect itself (redirect/app.py)", lambda f: "redirect/app.py" in f),
    ("Shorty, other (codes, links, client address)", lambda f: "shorty/" in f),
    ("uvicorn: writing the response (send)", lambda f: "RequestResponseCycle.send" in f),
    ("uvicorn: parsing, task start", lambda f: "uvicorn/" in f),
    ("granian: handing requests to the loop", lambda f: "granian/" in f),
]
LOOP = "event loop: uvloop's C code (sockets, callbacks), no Python frame"


def shares(raw: str) -> list[tuple[str, float]]:
    """The parts' shares of the samples in py-spy's raw output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        frames = stack.split(";")
        if not frames[-1] or "asyncio/runners.py" in frames[-1]:  # the loop runs, no callback
            counts[LOOP] += int(number)
            continue
        for frame in reversed(frames):
            part = next((name for name, test in PARTS if test(frame)), None)
            if part is not None:
                counts[part] += int(number)
                break
        else:
            counts[LOOP] += int(number)
    total = sum(counts.values()) or 1
    return [(part, count / total) for part, count in counts.most_common()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench profile",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Needs wrk (apt-get install wrk) and py-spy (in the dev extra).",
    )
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn")
    parser.add_argument("--seconds", type=int, default=8, help="length of the sampling")
    parser.add_argument("--links", type=int, default=100_000)
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if shutil.which("wrk") is None or not os.path.exists(spy):
        raise SystemExit("wrk and py-spy are needed: apt-get install wrk; pip install py-spy")
    with seeded_stores(args.links, seed=1, database="shorty_bench") as stores:
        codes_file = stores.codes_file
        env = {
            "SHORTY_DATABASE_URL": stores.database_url,
            "SHORTY_REDIS_URL": stores.redis_url,
            "SHORTY_SECRET_KEY": "bench-secret-key",
            "SHORTY_LOG_LEVEL": "INFO",
            "SHORTY_DRAIN_DELAY": "0",
            "SHORTY_LRU_SIZE": str(args.links),
            "SHORTY_LRU_TTL": "3600",
        }
        service = shorty_server(env, args.server)
        try:
            warm = max(5, args.links // 4000)
            run_wrk(
                service.url, codes_file, connections=64, seconds=warm, script="sequential_codes.lua"
            )
            command = ["wrk", "-t1", "-c64", f"-d{args.seconds + 4}s"]
            command += ["-s", str(HERE / "random_codes.lua"), service.url, "--", str(codes_file)]
            load = subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603
            try:
                time.sleep(2)
                out = RESULTS / f"profile-{args.server}.txt"
                RESULTS.mkdir(exist_ok=True)
                record = [spy, "record", "--nonblocking", "-r", "250", "-d", str(args.seconds)]
                record += ["-f", "raw", "-o", str(out), "-p", str(service.process.pid)]
                subprocess.run(record, check=True, capture_output=True)  # noqa: S603
                load.wait(args.seconds + 30)
            finally:  # py-spy failed, or wrk overran: no wrk left behind
                if load.poll() is None:
                    load.kill()
                    load.wait(10)
        finally:
            service.stop(20)
    print(f"shorty serve redirect --server {args.server}, {args.seconds} s of samples ({out}):")
    for part, share in shares(out.read_text()):
        print(f"| {part} | {share * 100:.1f}% |")


if __name__ == "__main__":
    main()
