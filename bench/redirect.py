"""Redirect benchmark: the service against the limits of its own stack, in one run.

Starts PostgreSQL and Redis (embedded, or SHORTY_DATABASE_URL / SHORTY_REDIS_URL),
seeds links, then serves each app with uvicorn (uvloop, httptools, one process)
and drives it with wrk (one thread, fixed connections, fixed time) over random
codes. Cases:

  hot       the service with every link in its LRU   vs  bare ASGI 301, under each
            of --servers (uvicorn, and granian as `shorty serve --server granian`
            runs it: one process, uvloop); and, under the first, the service with
            tracing on (shorty+otel: spans exported over OTLP to a receiver in
            this process that drops them, the redirect's default ratio 0.01)
  redis     the service with the LRU off             vs  Starlette + one Redis GET
  postgres  the service with LRU and Redis cache off vs  Starlette + one asyncpg SELECT
  scale     the postgres case with 10,000 and with 1,000,000 links (p99 ratio),
            below saturation (--scale-connections), after an unmeasured warm-up

Careful: a Redis named by SHORTY_REDIS_URL is flushed (FLUSHDB) to seed it, and a
PostgreSQL named by SHORTY_DATABASE_URL gets databases shorty_bench* (re)created.

Prints one table and writes it to bench/results/redirect.json. Targets are
ratios within the run, each app against the baseline under the same server (see
docs/performance.md); nothing here is tuned per case except the tiers the case is
about. The redis, postgres and scale cases run under the first of --servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncpg
import redis

from shorty import embedded
from shorty.cache.links import KEY, CachedLink, encode
from shorty.core.codes import BASE62
from shorty.processes import Child, NotReady, Stuck, port_open
from shorty.store import migrate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / ".shorty-data" / "bench"
RESULTS = HERE / "results"
UVICORN = [
    "--loop", "uvloop", "--http", "httptools", "--no-access-log",
    "--log-level", "warning", "--lifespan", "on",
]  # fmt: skip


@dataclass
class Run:
    case: str
    server: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    rss_mb: float | None = None
    tiers: dict[str, float] | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def codes_for(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        seen.add("".join(rng.choice(BASE62) for _ in range(7)))
    return sorted(seen)


async def seed_database(admin_url: str, name: str, codes: list[str]) -> str:
    await embedded.drop_database(admin_url, name)
    url = await embedded.ensure_database(admin_url, name)
    await asyncio.to_thread(migrate.upgrade, url)
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "urls",
            records=((code, f"https://example.com/{code}") for code in codes),
            columns=["code", "target"],
        )
        await conn.execute("VACUUM ANALYZE urls")
    finally:
        await conn.close()
    return url


def seed_redis(redis_url: str, database_url: str, codes: list[str]) -> None:
    async def ids() -> dict[str, int]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch("SELECT code, id FROM urls")
        finally:
            await conn.close()
        return {row["code"]: row["id"] for row in rows}

    link_ids = asyncio.run(ids())
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    pipe = client.pipeline(transaction=False)
    for index, code in enumerate(codes):
        target = f"https://example.com/{code}"
        entry = encode(CachedLink(link_ids[code], target), fresh_until=time.time() + 3600)
        pipe.set(KEY.format(code), entry, ex=3600)
        pipe.set(f"bench:{code}", target, ex=3600)
        if index % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    client.close()


@dataclass(frozen=True)
class Stores:
    """PostgreSQL and Redis with links seeded (``seeded_stores``)."""

    admin_url: str  # the server's: more databases can be made there
    database_url: str  # the seeded database
    redis_url: str
    codes: list[str]  # the seeded codes
    codes_file: Path  # the same, one a line (what wrk's scripts read)


@contextlib.contextmanager
def seeded_stores(
    links: int, *, seed: int, database: str, codes_name: str = "codes.txt"
) -> Iterator[Stores]:
    """The embedded PostgreSQL and Redis (or those of SHORTY_DATABASE_URL and
    SHORTY_REDIS_URL), ``links`` codes drawn with ``seed`` seeded into a database
    ``database`` and into Redis, the codes written to ``DATA/codes_name``; the embedded
    servers stopped on leaving."""
    DATA.mkdir(parents=True, exist_ok=True)
    admin_url = os.environ.get("SHORTY_DATABASE_URL")
    redis_url = os.environ.get("SHORTY_REDIS_URL")
    # embedded.start keeps what stop() needs to stop them (a Redis was left running).
    servers = embedded.start(DATA, postgres=admin_url is None, redis=redis_url is None)
    admin_url = admin_url or servers.database_url
    redis_url = redis_url or servers.redis_url
    assert admin_url is not None
    assert redis_url is not None
    try:
        print(f"seeding {links:,} links ...", flush=True)
        codes = codes_for(links, seed=seed)
        codes_file = DATA / codes_name
        codes_file.write_text("\n".join(codes) + "\n")
        database_url = asyncio.run(seed_database(admin_url, database, codes))
        seed_redis(redis_url, database_url, codes)
        yield Stores(admin_url, database_url, redis_url, codes, codes_file)
    finally:
        servers.stop()


class Server(Child):
    """A server under test, ready once made; its stderr goes to DATA/<name>.log (its
    stdout, the access log, nowhere: writing it down would cost as much as serving)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        port: int,
        metrics_port: int | None = None,
    ) -> None:
        self.port = port
        self.metrics_port = metrics_port
        log = DATA / f"{name}.log"
        super().__init__(name, command, env={**os.environ, **env}, log=log, stdout=False)
        try:
            self.wait_ready(port_open(port), 30)
        except NotReady as error:
            self.kill()
            raise SystemExit(str(error)) from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else float("nan")

    def metrics(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        found = {}
        for labels, value in re.findall(r"shorty_redirect_lookups_total\{([^}]*)\} (\S+)", text):
            named = dict(re.findall(r'(\w+)="(\w+)"', labels))
            found[f"{named['tier']}:{named['result']}"] = float(value)
        return found


def named(app: str, server: str) -> str:
    """How a run is named: the app, and the server when it is not uvicorn."""
    return app if server == "uvicorn" else f"{app}@{server}"


def shorty_server(env: dict[str, str], server: str = "uvicorn", app: str = "shorty") -> Server:
    """``app``: the run's name (``shorty+otel`` for the service tracing)."""
    port, metrics_port = free_port(), free_port()
    command = [sys.executable, "-m", "shorty", "serve", "redirect", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--metrics-port", str(metrics_port)]
    if server != "uvicorn":  # the default: a checkout from before the option runs too
        command += ["--server", server]
    return Server(named(app, server), command, env, port, metrics_port)


class _Dropped(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver's answer to every export: accepted (an empty
    ExportTraceServiceResponse), the spans dropped."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def otlp_sink() -> Iterator[str]:
    """An OTLP/HTTP endpoint on 127.0.0.1 that takes spans and drops them: what the
    traced service pays is its spans and their export, not a collector's work."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Dropped)
    thread = threading.Thread(target=sink.serve_forever, name="otlp-sink", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sink.server_address[1]}"
    finally:
        sink.shutdown()
        sink.server_close()


def baseline_server(app: str, env: dict[str, str], server: str = "uvicorn") -> Server:
    port = free_port()
    if server == "uvicorn":
        command = [sys.executable, "-m", "uvicorn", f"bench.baselines:{app}", *UVICORN]
        command += ["--host", "127.0.0.1"]
    else:
        command = [sys.executable, "-m", "bench.serve", app]
    return Server(named(app, server), [*command, "--port", str(port)], env, port)


def wrk(url: str, codes_file: Path, *, connections: int, seconds: int, script: str) -> str:
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
        "-s", str(HERE / script), url, "--", str(codes_file),
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603


def read_wrk(output: str) -> tuple[int, float, float, float, int]:
    """wrk's figures: requests answered, requests/s, p50 and p99 in ms (NaN when wrk
    printed none), and errors (answers other than 2xx/3xx, and socket errors)."""

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([0-9.]+)(us|ms|s)\s*$", output, re.MULTILINE)
        if match is None:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    total = re.search(r"(\d+) requests in", output)
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: .*", output)
    count = int(errors.group(1)) if errors else 0
    if socket_errors:
        count += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    requests = int(total.group(1)) if total else 0
    rps = float(rate.group(1)) if rate else 0.0
    return requests, rps, latency("50"), latency("99"), count


def parse_wrk(output: str) -> tuple[float, float, float, int]:
    _, rps, p50, p99, errors = read_wrk(output)
    if math.isnan(p50) or math.isnan(p99):
        raise SystemExit(f"no latency percentiles in wrk output:\n{output}")
    return rps, p50, p99, errors


def compare(
    case: str,
    targets: list[tuple[Server, Path]],
    args: argparse.Namespace,
    *,
    connections: int | None = None,
    rounds: int | None = None,
) -> list[Run]:
    """wrk against each (server, codes file) in turn, ``args.rounds`` times; medians.

    Interleaving the servers spreads the machine's own noise over all of them
    instead of charging it to whichever ran at a bad moment.
    """
    samples: dict[str, list[tuple[float, float, float, int]]] = {s.name: [] for s, _ in targets}
    before = {s.name: s.metrics() for s, _ in targets if s.name.startswith("shorty")}
    for _ in range(rounds or args.rounds):
        for server, codes_file in targets:
            output = wrk(
                server.url,
                codes_file,
                connections=connections or args.connections,
                seconds=args.seconds,
                script="random_codes.lua",
            )
            samples[server.name].append(parse_wrk(output))
    runs = []
    for server, _ in targets:
        columns = list(zip(*samples[server.name], strict=True))
        rps, p50, p99 = (statistics.median(values) for values in columns[:3])
        errors = sum(columns[3])
        run = Run(case, server.name, round(rps, 1), round(p50, 3), round(p99, 3), errors)
        if server.name in before:
            after = server.metrics()
            total = sum(after.values()) - sum(before[server.name].values())
            run.tiers = {
                key: round((after[key] - before[server.name].get(key, 0)) / total, 4)
                for key in sorted(after)
                if total and after[key] != before[server.name].get(key, 0)
            }
            run.rss_mb = round(server.rss_mb(), 1)
        print(
            f"  {case:<10} {server.name:<20} {rps:>10,.0f} req/s"
            f"  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}",
            flush=True,
        )
        runs.append(run)
    return runs


def stop_all(servers: list[Server]) -> None:
    for server in servers:
        try:
            server.stop(20)
        except Stuck as stuck:
            print(stuck, file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench redirect", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--links", type=int, default=100_000, help="links for hot/redis/postgres")
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server (median)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument(
        "--cases",
        default="hot,redis,postgres,scale",
        help="comma-separated subset of: hot, redis, postgres, scale",
    )
    parser.add_argument(
        "--servers",
        default="uvicorn,granian",
        help="comma-separated HTTP servers for the hot case (Shorty and bare ASGI under"
        " each): uvicorn, granian; the other cases run under the first",
    )
    parser.add_argument(
        "--no-tracing",
        dest="tracing",
        action="store_false",
        help="leave out the hot case's shorty+otel run (the service exporting spans)",
    )
    parser.add_argument(
        "--scale-connections",
        type=int,
        default=16,
        help="wrk connections for the scale case (below saturation: p99 is service time)",
    )
    args = parser.parse_args(argv)
    args.servers = args.servers.split(",")
    if not args.servers or not set(args.servers) <= {"uvicorn", "granian"}:
        parser.error("--servers: uvicorn, granian or both")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: sudo apt-get install wrk (Debian/Ubuntu)")

    runs: list[Run] = []
    with seeded_stores(args.links, seed=1, database="shorty_bench") as stores:
        admin_url, database_url = stores.admin_url, stores.database_url
        redis_url, codes, codes_file = stores.redis_url, stores.codes, stores.codes_file
        env = {
            "SHORTY_DATABASE_URL": database_url,
            "SHORTY_REDIS_URL": redis_url,
            "SHORTY_PUBLIC_URL": "http://127.0.0.1",
            "SHORTY_SECRET_KEY": "bench-secret-key",
            "SHORTY_LOG_LEVEL": "INFO",
            "SHORTY_DRAIN_DELAY": "0",
            "BENCH_CODES": str(codes_file),
        }

        cases = set(args.cases.split(","))
        pg_env = {**env, "SHORTY_LRU_SIZE": "0", "SHORTY_CACHE_TTL": "0"}
        if "hot" in cases:
            runs += hot(env, codes_file, args)
        if "redis" in cases:
            seed_redis(redis_url, database_url, codes)
            group = [
                shorty_server({**env, "SHORTY_LRU_SIZE": "0"}, args.servers[0]),
                baseline_server("starlette_redis", env),
            ]
            try:
                runs += compare("redis", [(server, codes_file) for server in group], args)
            finally:
                stop_all(group)
        if "postgres" in cases:
            group = [
                shorty_server(pg_env, args.servers[0]),
                baseline_server("starlette_postgres", env),
            ]
            try:
                runs += compare("postgres", [(server, codes_file) for server in group], args)
            finally:
                stop_all(group)
        if "scale" in cases:
            runs += scale(admin_url, pg_env, args)
    report(runs, args)


def hot(env: dict[str, str], codes_file: Path, args: argparse.Namespace) -> list[Run]:
    """Every link in the LRU (kept for the whole run), against bare ASGI."""
    hot_env = {**env, "SHORTY_LRU_SIZE": str(args.links), "SHORTY_LRU_TTL": "3600"}
    group = []
    with contextlib.ExitStack() as stack:
        stack.callback(stop_all, group)
        for server in args.servers:
            group += [shorty_server(hot_env, server), baseline_server("bare", env, server)]
        if args.tracing:  # the default sampler and ratio: only where spans go is set
            endpoint = stack.enter_context(otlp_sink())
            traced = {**hot_env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
            group.append(shorty_server(traced, args.servers[0], "shorty+otel"))
        group.append(baseline_server("starlette_dict", env))
        print("warming the LRU ...", flush=True)
        warm = max(5, args.links // 4000)
        for shorty in group:
            if shorty.name.startswith("shorty"):
                wrk(
                    shorty.url,
                    codes_file,
                    connections=args.connections,
                    seconds=warm,
                    script="sequential_codes.lua",
                )
        return compare("hot", [(server, codes_file) for server in group], args)


def scale(admin_url: str, pg_env: dict[str, str], args: argparse.Namespace) -> list[Run]:
    """PostgreSQL-tier latency with 10,000 links and with 1,000,000, side by side."""
    group = []
    files = []
    try:
        for count in (10_000, 1_000_000):
            print(f"seeding {count:,} links for the scale case ...", flush=True)
            scale_codes = codes_for(count, seed=count)
            scale_file = DATA / f"codes-{count}.txt"
            scale_file.write_text("\n".join(scale_codes) + "\n")
            url = asyncio.run(seed_database(admin_url, f"shorty_bench_{count}", scale_codes))
            server = shorty_server({**pg_env, "SHORTY_DATABASE_URL": url}, args.servers[0])
            server.name = f"shorty-{count // 1000}k"
            group.append(server)
            files.append(scale_file)
        targets = list(zip(group, files, strict=True))
        for server, codes_file in targets:  # warm each database's cache once, unmeasured
            wrk(
                server.url,
                codes_file,
                connections=args.scale_connections,
                seconds=args.seconds,
                script="random_codes.lua",
            )
        return compare(
            "scale", targets, args, connections=args.scale_connections, rounds=args.rounds + 2
        )
    finally:
        stop_all(group)


def baseline_of(run: Run) -> str | None:
    """The run a Shorty run is measured against: the case's baseline, same server."""
    app, _, server = run.server.partition("@")
    base = {"hot": "bare", "redis": "starlette_redis", "postgres": "starlette_postgres"}
    if app not in ("shorty", "shorty+otel") or run.case not in base:
        return None
    return named(base[run.case], server or "uvicorn")


def _suffix(run: Run) -> str:
    """A check's name after its case: ``_otel`` for the service tracing, then the
    server when it is not uvicorn (``hot_ratio_otel``, ``hot_p99_ms_granian``)."""
    app, _, server = run.server.partition("@")
    return ("_otel" if app == "shorty+otel" else "") + (f"_{server}" if server else "")


def report(runs: list[Run], args: argparse.Namespace) -> None:
    by = {(r.case, r.server): r for r in runs}
    print()
    print(f"{'case':<10}{'server':<20}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}")
    checks: dict[str, float | None] = {}
    for run in runs:
        base = by.get((run.case, baseline_of(run) or ""))
        ratio = run.requests_per_s / base.requests_per_s if base else None
        if ratio is not None:
            checks[f"{run.case}_ratio{_suffix(run)}"] = round(ratio, 3)
        shown = f"{ratio:.2f}" if ratio is not None else ""
        print(
            f"{run.case:<10}{run.server:<20}{run.requests_per_s:>10,.0f}{run.p50_ms:>9.2f}{run.p99_ms:>9.2f}{shown:>8}"
        )
    for run in runs:  # each server's Shorty against the bare app under uvicorn, too
        bare = by.get(("hot", "bare"))
        if run.case == "hot" and run.server.startswith("shorty@") and bare:
            server = run.server.partition("@")[2]
            checks[f"hot_{server}_vs_uvicorn_bare"] = round(
                run.requests_per_s / bare.requests_per_s, 3
            )
    for run in runs:
        if run.case == "hot" and run.server.startswith("shorty"):
            checks[f"hot_p99_ms{_suffix(run)}"] = run.p99_ms
            checks[f"hot_rss_mb{_suffix(run)}"] = run.rss_mb
    small, large = by.get(("scale", "shorty-10k")), by.get(("scale", "shorty-1000k"))
    if small and large:
        checks["scale_p99_ratio"] = round(large.p99_ms / small.p99_ms, 3)
    print()
    for name, value in checks.items():
        print(f"  {name} = {value}")
    RESULTS.mkdir(exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "arch": platform.machine(),
        },
        "settings": {
            "links": args.links,
            "seconds": args.seconds,
            "connections": args.connections,
            "scale_connections": args.scale_connections,
            "servers": args.servers,
            "wrk_threads": 1,
        },
        "runs": [asdict(run) for run in runs],
        "checks": checks,
    }
    (RESULTS / "redirect.json").write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwritten to {RESULTS / 'redirect.json'}")


if __name__ == "__main__":
    main()
