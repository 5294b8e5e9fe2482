"""Instructions per hot redirect, counted by valgrind (callgrind): a figure that the
machine's load does not move, for what changes in the request path.

Each app is served in process by uvicorn's own HTTP protocol (httptools, uvloop)
over transports that only count what is written: no sockets, so the kernel's part
(the same for every app) is left out. 64 connections send GET requests for 512
codes of links whose copies the process LRU holds; the count is taken for N and
for 2N requests and the difference divided by N, so start-up and shutdown cancel
out (the click buffer's final write of the extra clicks stays in, as their share).

  bare      the bare ASGI 301 of bench/baselines.py
  bare4     the same with the four headers a redirect sends (uvicorn checks each)
  shorty    `shorty serve redirect`'s app: access log, metrics, click capture on

``--without line,click,metrics`` (shorty only) replaces those parts by no-ops,
for measurement only: what the rest of a redirect costs.

    python -m bench instructions [--requests 3200] [--apps bare,bare4,shorty]
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONNECTIONS = 64
CODES = 512
FOUR_HEADERS = [
    (b"location", b"https://example.com/"),
    (b"cache-control", b"no-store"),
    (b"content-length", b"0"),
    (b"x-request-id", b"0123456789abcdef0123456789abcdef"),
]
# Under valgrind everything runs ~50 times slower: no deadline, timeout or flush
# interval may fire during the count (a timed-out lookup would leave the LRU cold).
SLOW_CLOCK = {
    "SHORTY_CLICK_BATCH": "10000",
    "SHORTY_CLICK_BUFFER": "100000",
    "SHORTY_CLICK_FLUSH_INTERVAL": "60",
    "SHORTY_REDIS_TIMEOUT": "30",
    "SHORTY_REDIRECT_DEADLINE": "60",
    "SHORTY_REDIRECT_REDIS_TIMEOUT": "30",
    "SHORTY_DB_TIMEOUT": "30",
    "SHORTY_LIVENESS_MAX_LAG": "300",
    "SHORTY_LRU_TTL": "3600",
    "SHORTY_LOG_LEVEL": "INFO",
    "SHORTY_SECRET_KEY": "bench-secret-key",
}


class Transport:
    """What uvicorn writes to: counted and dropped."""

    def __init__(self, statuses: dict[bytes, int]) -> None:
        self.statuses = statuses
        self.closing = False

    def write(self, data: bytes) -> None:
        if data.startswith(b"HTTP/1.1 "):
            status = data[9:12]
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        addresses = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}
        return addresses.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def without(parts: list[str]) -> None:
    """Replace the named parts of a redirect by no-ops (measurement only)."""
    import shorty.redirect.app as redirect_app
    from shorty.obs.accesslog import AccessLog
    from shorty.obs.requestlog import RequestLogMiddleware

    class NoObservation:
        def observe(self, value: float) -> None: ...
        def inc(self, value: float = 1) -> None: ...

    nothing = NoObservation()
    for part in parts:
        if part == "line":
            AccessLog.write_known = lambda *args: None  # type: ignore[method-assign]
        elif part == "click":
            redirect_app.click_of = lambda *args: None  # type: ignore[assignment,attr-defined]
        elif part == "metrics":
            import shorty.redirect.resolve as resolve

            RequestLogMiddleware._histogram = lambda *args: nothing  # type: ignore[assignment,method-assign]
            resolve._LRU_HIT = nothing  # type: ignore[assignment]
        else:
            raise SystemExit(f"--without: line, click or metrics, not {part!r}")


def build(app: str) -> Any:
    from bench import baselines

    if app == "bare":
        return baselines.bare
    if app == "bare4":
        baselines._LOCATION = FOUR_HEADERS
        return baselines.bare
    from shorty.obs.logging import configure_logging
    from shorty.redirect.app import create_app
    from shorty.settings import load_settings

    settings = load_settings()
    configure_logging(settings.log_level, "redirect")
    return create_app(settings)


async def drive(app: str, requests: int, codes: list[str]) -> dict[bytes, int]:
    from uvicorn.config import Config
    from uvicorn.lifespan.on import LifespanOn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(build(app), lifespan="on", log_config=None, access_log=False)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    state = ServerState()
    statuses: dict[bytes, int] = {}
    protocols = []
    for _ in range(CONNECTIONS):
        protocol = HttpToolsProtocol(config, state, lifespan.state)
        protocol.connection_made(Transport(statuses))  # type: ignore[arg-type]
        protocols.append(protocol)
    sent = [
        f"GET /{code} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk/4.1\r\n\r\n".encode()
        for code in codes
    ]

    async def rounds(count: int) -> None:
        for number in range(count):
            want = state.total_requests + CONNECTIONS
            for index, protocol in enumerate(protocols):
                protocol.data_received(sent[(number * CONNECTIONS + index) % len(sent)])
            # uvicorn counts a response once it is written; no event tells of it.
            while state.total_requests < want:  # noqa: ASYNC110
                await asyncio.sleep(0)

    await rounds(2 * len(codes) // CONNECTIONS)  # each code looked up once: the LRU holds it
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 50)  # as `shorty serve redirect` runs
    statuses.clear()
    await rounds(requests // CONNECTIONS)
    for protocol in protocols:
        protocol.transport.close()
        protocol.connection_lost(None)
    await lifespan.shutdown()
    return statuses


def child(app: str, requests: int, parts: list[str]) -> None:
    import uvloop

    without(parts)
    codes = Path(os.environ["BENCH_CODES"]).read_text().split()[:CODES]
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the access lines go nowhere
    statuses = uvloop.run(drive(app, requests, codes))
    print(f"statuses {statuses}", file=sys.stderr)


def count(app: str, requests: int, parts: list[str], env: dict[str, str]) -> int:
    """Instructions of a whole child process serving ``requests`` requests."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    command += [sys.executable, "-m", "bench.instructions", "--child", app]
    command += ["--requests", str(requests), "--without", ",".join(parts)]
    done = subprocess.run(  # noqa: S603
        command, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    statuses = re.search(r"statuses (.*)", done.stderr)
    collected = re.search(r"Collected : ([\d,]+)", done.stderr)
    if done.returncode or collected is None or statuses is None:
        raise SystemExit(f"{app} failed:\n{done.stderr[-3000:]}")
    answered = ast.literal_eval(statuses.group(1))
    if sum(answered.values()) != requests or not all(s.startswith(b"3") for s in answered):
        raise SystemExit(f"{app}: not {requests} redirects but {answered}")
    return int(collected.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench instructions",
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Needs valgrind (sudo apt-get install valgrind); about a minute per app.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=3200, help="N (a multiple of 64)")
    parser.add_argument("--apps", default="bare,bare4,shorty", help="bare, bare4, shorty")
    parser.add_argument("--without", default="", help="shorty without: line, click, metrics")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    parts = [part for part in args.without.split(",") if part]
    if args.child:
        child(args.child, args.requests, parts)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed: sudo apt-get install valgrind (Debian/Ubuntu)")
    from bench.redirect import seeded_stores

    with seeded_stores(
        CODES, seed=3, database="shorty_instr", codes_name="instruction-codes.txt"
    ) as stores:
        env = {
            **SLOW_CLOCK,
            "SHORTY_DATABASE_URL": stores.database_url,
            "SHORTY_REDIS_URL": stores.redis_url,
            "BENCH_CODES": str(stores.codes_file),
        }
        print(f"{'app':<28}{'instructions/request':>22}")
        for app in args.apps.split(","):
            once = count(app, args.requests, parts, env)
            twice = count(app, 2 * args.requests, parts, env)
            name = app + (f" without {args.without}" if app == "shorty" and parts else "")
            print(f"{name:<28}{(twice - once) / args.requests:>22,.0f}", flush=True)


if __name__ == "__main__":
    main()
