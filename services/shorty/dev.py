"""``shorty dev``: the whole stack on a laptop, in one terminal.

Embedded PostgreSQL and Redis (unless SHORTY_DATABASE_URL / SHORTY_REDIS_URL
are set), migrations, a dev admin with an API key, then the API, redirect and
worker as child processes (shorty.processes). A service that exits is started
again after a backoff, one line each time (``RESTART``); one that keeps crashing
at once stops the stack with its last lines. An embedded server that dies is
started again on its socket alike (shorty.keeper). Ctrl-C or SIGTERM stops the
children, the last started first, then the servers; a signal that comes while a
server or a child is being started waits until it is recorded, so nothing
started is left running. The dev credentials are kept in
``<data-dir>/credentials.json`` (mode 0600) so a second run prints the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
from pydantic import SecretStr

from shorty import embedded
from shorty.core.accounts import DEV_ADMIN_EMAIL, SCOPES
from shorty.keeper import Keeper, ServerLost
from shorty.processes import Child, Died, Group, NotReady, Restart, Stuck, held_signals, http_ok
from shorty.settings import METRICS_PORTS, Settings
from shorty.store import migrate
from shorty.store.bootstrap import ensure_initial_api_key
from shorty.store.db import small_pool
from shorty.store.keys import KeyStore
from shorty.store.users import UserStore

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# A crashed service or embedded server starts again after 0.5 s, 1 s, 2 s ... at most
# 8 s; five crashes in a row, each within 30 s of its start, stop the stack.
RESTART = Restart(first=0.5, cap=8.0, quick=30.0, give_up=5)


@dataclass(frozen=True)
class Credentials:
    email: str
    password: str | None
    api_key: str


class Stop(Exception):
    """Raised by the signal handler to leave the wait loop."""


def any_free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def metrics_ports(settings: Settings, host: str, taken: set[int]) -> dict[str, int]:
    """Each service's metrics port: its usual one (METRICS_PORTS), or any free one when
    that is taken; none with SHORTY_METRICS_PORT=0. One port for all three cannot be."""
    if settings.metrics_port == 0:
        return dict.fromkeys(METRICS_PORTS, 0)
    if settings.metrics_port is not None:
        raise click.ClickException(
            "SHORTY_METRICS_PORT names one port, and shorty dev runs three services;"
            " unset it (each gets its own) or set it to 0 (no metrics)"
        )
    ports = {}
    for service, port in METRICS_PORTS.items():
        while port in taken or not port_is_free(host, port):
            port = any_free_port(host)
        taken.add(port)
        ports[service] = port
    return ports


def live_targets(metrics: dict[str, str], api: str, redirect: str) -> str:
    """SHORTY_LIVE_TARGETS for the web app's live view: each service's metrics, and
    the readiness of those that have one (the worker has its metrics only)."""
    health = {"api": f"{api}/readyz", "redirect": f"{redirect}/readyz"}
    return json.dumps(
        [
            {"name": name, "metrics": url, **({"health": health[name]} if name in health else {})}
            for name, url in metrics.items()
        ]
    )


async def bootstrap(settings: Settings, database_url: str, path: Path) -> Credentials:
    """SHORTY_INITIAL_API_KEY first (it only applies while no key exists), then the
    dev admin's login and API key: reused if still valid, else made anew."""
    async with small_pool(database_url) as pool:
        if settings.initial_api_key is not None:
            await ensure_initial_api_key(
                pool, settings.initial_api_key.get_secret_value(), settings.initial_admin_email
            )
        users, keys = UserStore(pool), KeyStore(pool, max_live=settings.max_keys_per_user)
        saved = _read_credentials(path)
        if saved and await keys.authenticate(saved.api_key) is not None:
            return saved
        user = await users.by_email(DEV_ADMIN_EMAIL)
        password: str | None = None
        if user is None:
            password = secrets.token_urlsafe(12)
            user = await users.create(DEV_ADMIN_EMAIL, password, role="admin")
        elif user.role != "admin":
            raise click.ClickException(
                f"{DEV_ADMIN_EMAIL} exists and is not an admin (registered by someone else?);"
                " `shorty dev` will not give it an admin key. Remove that account, or use"
                " another --data-dir."
            )
        elif saved and saved.email == user.email:
            password = saved.password
        _, raw = await keys.create(user.id, name="shorty dev", scopes=tuple(sorted(SCOPES)))
        credentials = Credentials(user.email, password, raw)
        _write_credentials(path, credentials)
        return credentials


def _read_credentials(path: Path) -> Credentials | None:
    try:
        data = json.loads(path.read_text())
        return Credentials(data["email"], data.get("password"), data["api_key"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read (mode 0600 from the start)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _write_credentials(path: Path, credentials: Credentials) -> None:
    _write_private(path, json.dumps(credentials.__dict__))


def dev_secret(path: Path) -> str:
    """A dev secret (visitor-hash salt, JWT key), made once and kept with mode 0600."""
    try:
        kept = path.read_text().strip()
    except FileNotFoundError:
        kept = ""
    if len(kept) >= 32:
        return kept
    secret = secrets.token_urlsafe(32)
    _write_private(path, secret)
    return secret


def _serve(service: str, host: str, port: int | None, metrics_port: int) -> list[str]:
    """`shorty serve <service>` on ``host``, its metrics on a port of their own there."""
    public = ["--host", host, "--port", str(port)] if port else []
    return ["serve", service, *public, "--metrics-host", host, "--metrics-port", str(metrics_port)]


def _spawn(name: str, args: list[str], env: dict[str, str]) -> Child:
    # A new session: Ctrl-C reaches only us, and we stop the children in order.
    return Child(name, [sys.executable, "-m", "shorty", *args], env=env, new_session=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Once: a second Ctrl-C must not cut the stop that the first one started.
    _ignore_stops()
    raise Stop


def _ignore_stops() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def banner(settings: Settings, api: str, credentials: Credentials, metrics: dict[str, str]) -> str:
    password = credentials.password or "(unchanged: set when this admin was created)"
    scraped = "\n             ".join(f"{url}   ({name})" for name, url in metrics.items())
    return f"""
  Shorty is running.

  Web app    {api}/ui/   (log in with the admin login below, or sign up)
  API        {api}   (health: {api}/readyz)
  Redirects  {settings.public_base}/<code>
  Metrics    {scraped or "(none: SHORTY_METRICS_PORT=0)"}

  Admin login  {credentials.email} / {password}
  API key      {credentials.api_key}

  Shorten a URL:
    curl -s -X POST {api}/api/v1/shorten \\
      -H 'Authorization: Bearer {credentials.api_key}' \\
      -H 'Content-Type: application/json' \\
      -d '{{"target": "https://example.com/a/long/path"}}'

  Press Ctrl-C to stop.
"""


def run_dev(
    settings: Settings, *, host: str, api_port: int, redirect_port: int, data_dir: Path
) -> None:
    for label, port in (("--api-port", api_port), ("--redirect-port", redirect_port)):
        if not port_is_free(host, port):
            raise click.ClickException(
                f"port {port} on {host} is in use; choose another with {label}"
            )
    ports = metrics_ports(settings, host, {api_port, redirect_port})
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    servers: embedded.EmbeddedServers | None = None
    children = Group(RESTART, say=lambda line: click.echo(line, err=True))
    keeper = Keeper(RESTART, say=lambda line: click.echo(line, err=True))
    try:
        env = dict(os.environ)
        wanted = [
            name
            for name, given in (
                ("PostgreSQL", settings.database_url),
                ("Redis", settings.redis_url),
            )
            if given is None
        ]
        if wanted:
            click.echo(f"Starting embedded {' and '.join(wanted)} under {data_dir} ...")
        with held_signals():  # a stop meanwhile would leave a started server unknown
            servers = embedded.start(
                data_dir, postgres=settings.database_url is None, redis=settings.redis_url is None
            )
        for name, alive, start in servers.watched():
            keeper.add(name, alive, start)
        database_url = servers.database_url or _secret(settings.database_url)
        redis_url = servers.redis_url or _secret(settings.redis_url)
        env["SHORTY_DATABASE_URL"] = database_url
        env["SHORTY_REDIS_URL"] = redis_url
        env.setdefault("SHORTY_SECRET_KEY", dev_secret(data_dir / "secret_key"))
        env.setdefault("SHORTY_JWT_SECRET", dev_secret(data_dir / "jwt_secret"))
        # No load balancer to wait for: a service stopped or restarted stops at once.
        env.setdefault("SHORTY_DRAIN_DELAY", "0")
        if "SHORTY_PUBLIC_URL" not in os.environ:
            env["SHORTY_PUBLIC_URL"] = f"http://{_shown(host)}:{redirect_port}"
        click.echo("Migrating the database ...")
        migrate.upgrade(database_url)
        credentials = asyncio.run(bootstrap(settings, database_url, data_dir / "credentials.json"))
        api = f"http://{_shown(host)}:{api_port}"
        redirect = f"http://{_shown(host)}:{redirect_port}"
        metrics = {
            name: f"http://{_shown(host)}:{port}/metrics" for name, port in ports.items() if port
        }
        env.setdefault("SHORTY_LIVE_TARGETS", live_targets(metrics, api, redirect))
        services = [
            ("api", _serve("api", host, api_port, ports["api"]), http_ok(f"{api}/readyz")),
            (
                "redirect",
                _serve("redirect", host, redirect_port, ports["redirect"]),
                http_ok(f"{redirect}/readyz"),
            ),
            # Its metrics listener is what there is to wait for (it answers any path).
            (
                "worker",
                _serve("worker", host, None, ports["worker"]),
                http_ok(metrics["worker"]) if "worker" in metrics else None,
            ),
        ]
        for name, args, ready in services:
            with held_signals():  # started and recorded, or neither
                make = functools.partial(_spawn, name, args, env)
                children.add(make(), ready, make=make)
        try:
            children.wait_ready(READY_TIMEOUT)
        except NotReady as error:
            raise click.ClickException(str(error)) from None
        shown = Settings(public_url=env["SHORTY_PUBLIC_URL"])
        click.echo(banner(shown, api, credentials, metrics), nl=False)
        try:
            children.watch(also=keeper.check)
        except (Died, ServerLost) as lost:
            raise click.ClickException(str(lost)) from None
    except Stop:
        click.echo("\nStopping ...")
    finally:
        with contextlib.suppress(Stop):  # the first signal, just now: stopping anyway
            _ignore_stops()
        try:
            children.stop(STOP_TIMEOUT)
        except Stuck as stuck:
            click.echo(str(stuck), err=True)
        if servers is not None:
            servers.stop()
    click.echo("Stopped.")


def _secret(value: SecretStr | None) -> str:
    assert value is not None
    return value.get_secret_value()


def _shown(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104
