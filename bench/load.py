"""Load runs: ramp, spike and soak against the redirect service and the worker.

Starts PostgreSQL and Redis (embedded, or SHORTY_DATABASE_URL / SHORTY_REDIS_URL,
with the same care as `python -m bench redirect`: that Redis is flushed, the
databases shorty_bench* are recreated), seeds links, then runs
`shorty serve redirect` with its production defaults (LRU of 100,000 for 60 s,
Redis copies, access log, click capture) and `shorty serve worker`, which stores
the clicks. wrk drives the redirect service over loopback, one phase at a time;
every run is bounded in time. Runs:

  ramp   wrk connections doubling from 1 to --max-connections, --seconds each:
         where throughput stops growing, and the highest load at which p99 stays
         under --p99-ms with no error
  spike  --base connections, then --spike connections, then --base again: what a
         sudden burst does, and whether the service comes back
  soak   --minutes at --rate requests/s (default: half the capacity a short ramp
         measures first), paced by bench/paced_codes.lua; every --every seconds
         the resident memory of both services and every queue (click buffer,
         clicks dropped, the ingest group's lag and pending entries, the outbox,
         the rollups' backlog): flat, or growing

Prints a table per run and writes it to bench/results/load-<run>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.redirect import (
    DATA,
    HERE,
    RESULTS,
    Server,
    codes_for,
    free_port,
    read_wrk,
    seed_database,
)
from shorty import embedded
from shorty.processes import Stuck

# What a soak watches, by the metric's name and labels (the worker's stream
# gauges are per stream and group; only the clicks' ingest group matters here).
QUEUES = {
    "click_buffer": ("redirect", "shorty_click_buffer_size", {}),
    "clicks_dropped": ("redirect", "shorty_clicks_dropped_total", {}),
    "ingest_lag": ("worker", "shorty_stream_lag", {"stream": "shorty:clicks", "group": "ingest"}),
    "ingest_pending": (
        "worker",
        "shorty_stream_pending",
        {"stream": "shorty:clicks", "group": "ingest"},
    ),
    "outbox": ("worker", "shorty_outbox_unpublished", {}),
    "rollup_waiting": ("worker", "shorty_rollup_waiting_clicks", {}),
}


@dataclass
class Phase:
    name: str
    connections: int
    seconds: float
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    clicks_dropped: int = 0  # by the redirect's bounded buffer during the phase

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def answered_per_s(self) -> float:
        """Redirects per second, not counting errors: a shed 503 is cheap and fast,
        so counting it as throughput would flatter an overloaded phase."""
        return self.requests_per_s * (1 - self.error_rate)

    def line(self) -> str:
        return (
            f"  {self.name:<12}{self.connections:>6} conn {self.requests_per_s:>10,.0f} req/s"
            f" ({self.answered_per_s:,.0f} redirected)"
            f"  p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms"
            f"  errors {self.errors} ({self.error_rate:.2%})"
            + (f"  CLICKS DROPPED {self.clicks_dropped:,}" if self.clicks_dropped else "")
        )


@dataclass
class Sample:
    at_s: float
    redirect_rss_mb: float
    worker_rss_mb: float
    queues: dict[str, float] = field(default_factory=dict)


class Stack:
    """The redirect service and the worker on seeded stores; stopped on exit."""

    def __init__(self, links: int) -> None:
        self.links = links
        self.servers = embedded.EmbeddedServers()
        self.children: list[Server] = []

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        DATA.mkdir(parents=True, exist_ok=True)
        admin_url = os.environ.get("SHORTY_DATABASE_URL")
        redis_url = os.environ.get("SHORTY_REDIS_URL")
        self.servers = embedded.start(DATA, postgres=admin_url is None, redis=redis_url is None)
        admin_url = admin_url or self.servers.database_url
        redis_url = redis_url or self.servers.redis_url
        assert admin_url is not None
        assert redis_url is not None
        print(f"seeding {self.links:,} links ...", flush=True)
        codes = codes_for(self.links, seed=7)
        self.codes_file = DATA / "load-codes.txt"
        self.codes_file.write_text("\n".join(codes) + "\n")
        database_url = asyncio.run(seed_database(admin_url, "shorty_bench_load", codes))
        self.database_url = database_url
        with redis.Redis.from_url(redis_url) as client:  # no run inherits another's stream
            client.flushdb()
        env = {
            "SHORTY_DATABASE_URL": database_url,
            "SHORTY_REDIS_URL": redis_url,
            "SHORTY_PUBLIC_URL": "http://127.0.0.1",
            "SHORTY_SECRET_KEY": "bench-secret-key",
            "SHORTY_LOG_LEVEL": "INFO",
            "SHORTY_DRAIN_DELAY": "0",
        }
        port, metrics = free_port(), free_port()
        command = [sys.executable, "-m", "shorty", "serve", "redirect", "--host", "127.0.0.1"]
        command += ["--port", str(port), "--metrics-port", str(metrics)]
        self.redirect = Server("load-redirect", command, env, port, metrics)
        self.children.append(self.redirect)
        worker_metrics = free_port()
        command = [sys.executable, "-m", "shorty", "serve", "worker"]
        command += ["--metrics-host", "127.0.0.1", "--metrics-port", str(worker_metrics)]
        self.worker = Server("load-worker", command, env, worker_metrics, worker_metrics)
        self.children.append(self.worker)

    def __exit__(self, *exc: object) -> None:
        for child in self.children:
            try:
                child.stop(20)
            except Stuck as stuck:
                print(stuck, file=sys.stderr)
        self.servers.stop()

    def clicks_stored(self) -> int:
        async def count() -> int:
            conn = await asyncpg.connect(self.database_url)
            try:
                return int(await conn.fetchval("SELECT coalesce(sum(click_count), 0) FROM urls"))
            finally:
                await conn.close()

        return asyncio.run(count())

    def clicks_dropped(self) -> float:
        """The redirect's count of clicks its full buffer dropped, since it started."""
        _, metric, _ = QUEUES["clicks_dropped"]
        return sum(v for (name, _), v in scrape(self.redirect).items() if name == metric)

    def sample(self, started: float) -> Sample:
        scraped = {"redirect": scrape(self.redirect), "worker": scrape(self.worker)}
        queues = {}
        for name, (service, metric, labels) in QUEUES.items():
            queues[name] = sum(
                value
                for (sample_name, sample_labels), value in scraped[service].items()
                if sample_name == metric and labels.items() <= dict(sample_labels).items()
            )
        return Sample(
            round(time.monotonic() - started, 1),
            round(self.redirect.rss_mb(), 1),
            round(self.worker.rss_mb(), 1),
            queues,
        )


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wrk(
    stack: Stack,
    connections: int,
    seconds: float,
    pause_ms: float | None = None,
    script: str | None = None,
) -> str:
    script = script or ("random_codes.lua" if pause_ms is None else "paced_codes.lua")
    extra = [] if pause_ms is None else [f"{pause_ms:.3f}"]
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "--latency", "--timeout", "5s",
        "-s", str(HERE / script), stack.redirect.url, "--", str(stack.codes_file), *extra,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603


def phase(name: str, connections: int, seconds: float, output: str) -> Phase:
    requests, rps, p50, p99, errors = read_wrk(output)
    return Phase(
        name, connections, seconds, requests, round(rps, 1), round(p50, 3), round(p99, 3), errors
    )


def run_phase(
    stack: Stack, name: str, connections: int, seconds: float, script: str | None = None
) -> Phase:
    dropped = stack.clicks_dropped()
    result = phase(name, connections, seconds, wrk(stack, connections, seconds, script=script))
    result.clicks_dropped = int(stack.clicks_dropped() - dropped)
    print(result.line(), flush=True)
    return result


def ramp(stack: Stack, args: argparse.Namespace) -> dict[str, object]:
    phases = []
    connections = 1
    while connections <= args.max_connections:
        phases.append(run_phase(stack, f"ramp-{connections}", connections, args.seconds))
        connections *= 2
    capacity = max(phases, key=lambda p: p.answered_per_s)
    clean = [p for p in phases if p.p99_ms < args.p99_ms and p.errors == 0]
    best = max(clean, key=lambda p: p.requests_per_s) if clean else None
    print(
        f"\n  capacity: {capacity.answered_per_s:,.0f} redirects/s at {capacity.connections} conn"
        f" ({capacity.errors:,} errors: {capacity.error_rate:.2%})"
    )
    if best:
        print(
            f"  highest load with p99 < {args.p99_ms} ms and no error: "
            f"{best.requests_per_s:,.0f} req/s at {best.connections} conn (p99 {best.p99_ms} ms)"
        )
    else:
        print(f"  no phase had p99 < {args.p99_ms} ms without errors")
    return {
        "phases": [asdict(p) for p in phases],
        "capacity_rps": round(capacity.answered_per_s, 1),
        "p99_under_target_rps": best.requests_per_s if best else None,
    }


def spike(stack: Stack, args: argparse.Namespace) -> dict[str, object]:
    phases = [
        run_phase(stack, "before", args.base, args.seconds),
        run_phase(stack, "spike", args.spike, args.seconds),
        run_phase(stack, "after", args.base, args.seconds),
    ]
    before, after = phases[0], phases[2]
    recovered = after.requests_per_s >= 0.8 * before.requests_per_s and after.errors == 0
    print(
        f"\n  after the spike: {after.requests_per_s / max(before.requests_per_s, 1):.0%} "
        f"of the throughput before, {'recovered' if recovered else 'NOT recovered'}"
    )
    return {"phases": [asdict(p) for p in phases], "recovered": recovered}


def soak(stack: Stack, args: argparse.Namespace) -> dict[str, object]:
    rate = args.rate
    before: list[Phase] = []  # every phase before the soak sends redirects, so clicks
    if rate is None:
        print("measuring capacity first (a short ramp) ...", flush=True)
        before = [run_phase(stack, f"probe-{c}", c, 5) for c in (8, 32, 64)]
        rate = max(p.answered_per_s for p in before) / 2
    # Warm-up: every link once, in order, so the process LRU (SHORTY_LRU_SIZE, as many as
    # the links seeded by default) is full before the first sample; otherwise its filling
    # (random codes reach the last links slowly) reads as memory growth.
    warm_s = max(5, round(1.5 * stack.links / max(rate, 1)))
    print(f"warming every link once ({warm_s} s) ...", flush=True)
    before.append(run_phase(stack, "warm", 32, warm_s, script="sequential_codes.lua"))
    pause_ms = 1000 * args.connections / rate
    seconds = args.minutes * 60
    print(f"soak: {args.minutes} min at ~{rate:,.0f} req/s ({args.connections} conn)", flush=True)
    started = time.monotonic()
    samples = [stack.sample(started)]
    outcome: dict[str, str] = {}

    def drive() -> None:
        outcome["wrk"] = wrk(stack, args.connections, seconds, pause_ms)

    load = threading.Thread(target=drive, daemon=True)
    load.start()
    while load.is_alive():
        load.join(args.every)
        if load.is_alive():
            samples.append(stack.sample(started))
            print_sample(samples[-1])
    time.sleep(min(10, args.every))  # the worker catches up with the last seconds
    samples.append(stack.sample(started))
    print_sample(samples[-1])
    result = phase("soak", args.connections, seconds, outcome.get("wrk", ""))
    print(result.line())
    verdict = judge(samples)
    # Every answered redirect (the soak's and every phase's before it) is a click;
    # wrk stops with up to one request per connection sent but not answered, whose
    # click may be stored too.
    # Clicks the buffer dropped before the soak (counted: the judge fails a drop in
    # the soak itself) are not stored, or some are: a batch whose write timed out is
    # put back, and what no longer fits is counted as dropped though Redis may have
    # run the write (the worker stores each click id once), so the count is the most
    # that was lost.
    stored = stack.clicks_stored()
    dropped = int(samples[-1].queues["clicks_dropped"])
    answered = result.requests + sum(p.requests - p.errors for p in before)
    in_flight = args.connections + sum(p.connections for p in before)
    exact = answered - dropped <= stored <= answered + in_flight
    verdict["flat"] &= exact and result.errors == 0
    verdict["lines"].insert(
        -1,
        f"clicks stored {stored:,} for {answered:,} redirects answered, {dropped:,} dropped"
        f" and counted (+ up to {in_flight} in flight) {'ok' if exact else 'LOST OR DOUBLED'}",
    )
    for line in verdict["lines"]:
        print(f"  {line}")
    return {
        "rate_asked": round(rate, 1),
        "phase": asdict(result),
        "samples": [asdict(s) for s in samples],
        "clicks_stored": stored,
        "flat": verdict["flat"],
    }


def print_sample(sample: Sample) -> None:
    queues = "  ".join(f"{name} {value:g}" for name, value in sample.queues.items())
    print(
        f"  t={sample.at_s:>6.0f}s  rss redirect {sample.redirect_rss_mb} MB"
        f"  worker {sample.worker_rss_mb} MB  {queues}",
        flush=True,
    )


def judge(samples: list[Sample]) -> dict[str, Any]:
    """Flat: memory after the first third (warm-up: the LRU and pools fill) grows by
    less than 10%, nothing was dropped, and every queue ends no higher than the
    highest it reached in the first half (a queue that is bounded goes up and down;
    one that grows keeps setting records)."""
    lines, flat = [], True
    warm = samples[len(samples) // 3]
    last = samples[-1]
    for name in ("redirect_rss_mb", "worker_rss_mb"):
        start, end = getattr(warm, name), getattr(last, name)
        growth = (end - start) / start if start else 0.0
        ok = growth < 0.10
        flat &= ok
        lines.append(f"{name}: {start} -> {end} MB ({growth:+.1%}) {'flat' if ok else 'GROWING'}")
    half = samples[: max(1, len(samples) // 2)]
    for name in QUEUES:
        first_max = max(s.queues[name] for s in half)
        end = last.queues[name]
        if name == "clicks_dropped":  # a counter since the start: none during the soak
            first_max = samples[0].queues[name]
            ok = end == first_max
        else:
            ok = end <= max(first_max, 0)
        flat &= ok
        state = "ok" if ok else "GROWING"
        lines.append(f"{name}: max {first_max:g} in the first half, {end:g} at the end {state}")
    lines.append("FLAT" if flat else "NOT FLAT")
    return {"lines": lines, "flat": flat}


RUNS = {"ramp": ramp, "spike": spike, "soak": soak}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench load",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Runs: ramp, spike, soak (see bench/load.py and docs/performance.md).",
    )
    parser.add_argument("run", choices=sorted(RUNS))
    parser.add_argument("--links", type=int, default=100_000, help="links seeded")
    parser.add_argument("--seconds", type=int, default=10, help="length of a ramp/spike phase")
    parser.add_argument("--max-connections", type=int, default=128, help="ramp: last step")
    parser.add_argument("--p99-ms", type=float, default=10.0, help="ramp: the p99 target")
    parser.add_argument("--base", type=int, default=4, help="spike: connections around it")
    parser.add_argument("--spike", type=int, default=256, help="spike: connections in it")
    parser.add_argument("--minutes", type=float, default=10, help="soak: length")
    parser.add_argument("--rate", type=float, help="soak: requests/s (default: half capacity)")
    parser.add_argument("--connections", type=int, default=16, help="soak: wrk connections")
    parser.add_argument("--every", type=float, default=30, help="soak: seconds between samples")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: sudo apt-get install wrk (Debian/Ubuntu)")
    with Stack(args.links) as stack:
        print(f"{args.run}: redirect on {stack.redirect.url}", flush=True)
        result = RUNS[args.run](stack, args)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "settings": vars(args),
        "result": result,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"load-{args.run}.json"
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten to {out}")
