"""``make screenshots``: every page of the web app, at desktop width (light theme) and
phone width (dark theme), into docs/screenshots/ — from a real stack: a private
PostgreSQL and Redis, `shorty serve api|redirect|worker`, and Debian's Chromium
driven by Playwright (as the browser tests do; scripts/chromium.py links it).

The data is made up for the pictures (users, links, a month of clicks, dead letters,
a chaos experiment) and goes with the temporary folder. Nothing is printed but the
files written.

Usage: python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import redis

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = ROOT / ".venv" / "bin" / "chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
# Desktop width in the light theme, phone width in the dark one.
LOOKS: list[tuple[Any, Any, str]] = [
    ({"width": 1280, "height": 800}, "light", "desktop"),
    ({"width": 390, "height": 844}, "dark", "phone"),
]
ADA = ("ada@example.com", "correct horse battery")
ADMIN = ("admin@example.com", secrets.token_urlsafe(16))
AGENTS = {
    "chrome": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36",
    "firefox": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}
LINKS = [
    ("launch", "https://example.com/blog/2026/launch", "Launch post", ["blog", "launch"]),
    ("docs", "https://docs.example.com/getting-started", "Getting started", ["docs"]),
    ("pricing", "https://example.com/pricing?plan=team", "Pricing", ["sales"]),
    ("jobs", "https://example.com/careers", "We are hiring", ["hr"]),
    ("talk", "https://conf.example.org/2026/talks/shorty", "Conference talk", ["events"]),
    ("survey", "https://forms.example.com/s/q3-feedback", "Q3 feedback survey", ["product"]),
    ("status", "https://status.example.com/", "Status page", ["ops"]),
    ("deck", "https://slides.example.com/d/launch-deck", "Launch deck", ["launch", "sales"]),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise SystemExit(f"screenshots: {url} did not answer within {seconds:.0f} s")


@contextmanager
def stack(folder: Path) -> Iterator[dict[str, str]]:
    """The servers, the database with its tables, and the three services."""
    from shorty import embedded
    from shorty.dev import live_targets
    from shorty.store import migrate

    servers = embedded.start(folder / "data")
    children: list[subprocess.Popen[bytes]] = []
    try:
        assert servers.database_url is not None
        assert servers.redis_url is not None
        migrate.upgrade(servers.database_url)
        ports = {
            name: free_port()
            for name in ("api", "redirect", "worker", "m-api", "m-redirect", "m-worker")
        }
        api, redirect = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['redirect']}"
        metrics = {
            n: f"http://127.0.0.1:{ports['m-' + n]}/metrics" for n in ("api", "redirect", "worker")
        }
        env = {
            **os.environ,
            "SHORTY_DATABASE_URL": servers.database_url,
            "SHORTY_REDIS_URL": servers.redis_url,
            "SHORTY_PUBLIC_URL": "https://sho.rt",
            "SHORTY_SECRET_KEY": secrets.token_urlsafe(24),
            "SHORTY_JWT_SECRET": secrets.token_urlsafe(40),
            "SHORTY_CHAOS_ENABLED": "true",
            "SHORTY_LOG_LEVEL": "WARNING",
            "SHORTY_ACCESS_LOG": "false",
            "SHORTY_DRAIN_DELAY": "0",
            "SHORTY_LIVE_TARGETS": live_targets(metrics, api, redirect),
        }
        log = (folder / "services.log").open("ab")
        for kind in ("redirect", "worker", "api"):
            args = [sys.executable, "-m", "shorty", "serve", kind]
            if kind != "worker":
                args += ["--host", "127.0.0.1", "--port", str(ports[kind])]
            service_env = {**env, "SHORTY_METRICS_PORT": str(ports["m-" + kind])}
            children.append(subprocess.Popen(args, env=service_env, stdout=log, stderr=log))
        wait_for(f"{api}/readyz")
        wait_for(f"{redirect}/readyz")
        wait_for(metrics["worker"])
        yield {
            "api": api,
            "redirect": redirect,
            "database": servers.database_url,
            "redis": servers.redis_url,
        }
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        servers.stop()


async def seed(database_url: str, redis_url: str) -> None:
    from shorty.store.links import LinkStore
    from shorty.store.users import UserStore
    from shorty.worker.ingest import Click, ClickIngester
    from shorty.worker.rollup import Aggregator

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        users = UserStore(pool)
        ada = await users.create(*ADA)
        await users.create(*ADMIN, role="admin")
        for i in range(6):
            await users.create(f"user{i}@example.org", "a long enough password")
        store = LinkStore(pool)
        now = datetime.now(UTC)
        for code, target, title, tags in LINKS:
            await store.create(
                {"target": target, "title": title, "tags": tuple(tags)}, owner_id=ada.id, alias=code
            )
        await pool.execute("UPDATE urls SET disabled = true WHERE code = 'jobs'")
        await pool.execute(
            "UPDATE urls SET expires_at = $1 WHERE code = 'talk'", now - timedelta(days=2)
        )
        await pool.execute(
            "UPDATE urls SET blocked_reason = 'spam', blocked_note = 'Reported by three people',"
            " blocked_at = now() WHERE code = 'survey'"
        )
        rng = random.Random(7)  # noqa: S311 - made-up clicks for the pictures
        clicks = []
        for day in range(30):
            for code, weight in (
                ("launch", 40),
                ("docs", 25),
                ("pricing", 12),
                ("deck", 6),
                ("status", 3),
            ):
                for _ in range(rng.randint(weight // 3, weight) + (30 - day) // 2):
                    agent = rng.choices(list(AGENTS), weights=[50, 20, 25, 5])[0]
                    clicks.append(
                        Click(
                            click_id=secrets.token_hex(8),
                            code=code,
                            occurred_at=now - timedelta(days=day, minutes=rng.randint(0, 1439)),
                            referrer_host=rng.choice(
                                [
                                    "",
                                    "news.ycombinator.com",
                                    "t.co",
                                    "www.linkedin.com",
                                    "example.com",
                                ]
                            ),
                            user_agent=AGENTS[agent],
                            visitor_hash=f"v{rng.randint(1, 900)}",
                        )
                    )
        await ClickIngester(pool).store(clicks)
        await Aggregator(pool).drain()
    finally:
        await pool.close()
    client = redis.Redis.from_url(redis_url)
    for i in range(3):
        client.xadd(
            "shorty:dlq",
            {
                "dlq:stream": "shorty:clicks",
                "dlq:group": "ingest",
                "dlq:id": f"1733{i}000000-0",
                "dlq:error": "UniqueViolationError: duplicate key value"
                if i
                else "ValueError: bad user agent",
                "dlq:deliveries": "5",
                "dlq:at": str(int(time.time() * 1000)),
                "data": json.dumps({"code": "launch", "at": "2026-12-01T10:00:00Z"}),
            },
        )
    client.close()


def traffic(redirect: str) -> None:
    """A little live traffic, for the live view."""
    host, port = redirect.removeprefix("http://").split(":")
    for _ in range(20):  # each answered 302 (not followed: the targets are made up)
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", "/docs", headers={"User-Agent": AGENTS["firefox"]})
        connection.getresponse().read()
        connection.close()


def shoot(api: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            for viewport, scheme, suffix in LOOKS:
                contexts = {
                    who: browser.new_context(viewport=viewport, color_scheme=scheme)
                    for who in ("anon", "ada", "admin")
                }
                pages = {who: context.new_page() for who, context in contexts.items()}
                log_in(pages["ada"], api, *ADA)
                log_in(pages["admin"], api, *ADMIN)
                for who, path, name, before in SHOTS:
                    if before is start_chaos and suffix != "desktop":
                        before = None  # one experiment is enough: it runs on
                    target = out / f"{name}-{suffix}.png"
                    written.append(take(pages[who], api + path, target, before))
                for context in contexts.values():
                    context.close()
        finally:
            browser.close()
    return written


def take(page: Any, url: str, target: Path, before: Any) -> Path:
    page.goto(url)
    if before is not None:
        before(page)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(target), full_page=True)
    return target


def log_in(page: Any, api: str, email: str, password: str) -> None:
    page.goto(api + "/ui/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ui/links")


def import_csv(page: Any) -> None:
    rows = "target,alias,tags\nhttps://example.com/a,promo-a,spring\nnot a url,promo-b,\nhttps://example.com/c,,spring\n"
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as file:
        file.write(rows)
    try:
        page.get_by_label("CSV file").set_input_files(file.name)
        page.get_by_role("button", name="Import").click()
        page.wait_for_selector("table.results")
    finally:
        Path(file.name).unlink()


def new_key(page: Any) -> None:
    page.get_by_label("Name").fill(f"CI deploys {secrets.token_hex(2)}")
    page.get_by_role("button", name="Create key").click()
    page.wait_for_selector(".created-key")


def start_chaos(page: Any) -> None:
    page.get_by_label("Dependency").select_option("redis")
    page.get_by_label("Kind").select_option("latency")
    page.get_by_label("For (seconds)").fill("120")
    page.get_by_label("Added latency (ms)").fill("30")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/ui/admin/chaos?done=chaos-started")
    page.wait_for_timeout(2500)


def wait(page: Any) -> None:
    page.wait_for_timeout(2500)  # two pushes of the live figures


# Who looks, where, the file's name, and what is done on the page first.
SHOTS: list[tuple[str, str, str, Any]] = [
    ("anon", "/ui/login", "login", None),
    ("anon", "/ui/signup", "signup", None),
    ("ada", "/ui/links", "links", None),
    ("ada", "/ui/new", "new-link", None),
    ("ada", "/ui/links/launch", "link", None),
    ("ada", "/ui/links/launch/edit", "edit-link", None),
    ("ada", "/ui/links/survey", "blocked-link", None),
    ("ada", "/ui/links/launch/stats", "analytics", None),
    ("ada", "/ui/import", "import", import_csv),
    ("ada", "/ui/keys", "api-keys", new_key),
    ("ada", "/ui/account", "account", None),
    ("ada", "/ui/nowhere", "not-found", None),
    ("admin", "/ui/admin/users", "admin-users", None),
    ("admin", "/ui/admin/dlq", "dead-letters", None),
    ("admin", "/ui/admin/live", "live", wait),
    ("admin", "/ui/admin/chaos", "chaos", start_chaos),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    if not CHROMIUM.exists() and shutil.which("chromium") is None:
        print("screenshots: Debian's package `chromium` is not installed (scripts/chromium.py)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="shorty-shots-") as folder,
        stack(Path(folder)) as running,
    ):
        asyncio.run(seed(running["database"], running["redis"]))
        traffic(running["redirect"])
        written = shoot(running["api"], args.out)
    for path in written:
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
