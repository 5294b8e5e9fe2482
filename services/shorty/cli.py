"""The ``shorty`` command: run the services, migrate, manage users and API keys."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import asyncpg
import click
from starlette.types import ASGIApp

from shorty import __version__, embedded
from shorty.core.accounts import DEFAULT_SCOPES, SCOPES
from shorty.core.errors import DomainError
from shorty.settings import METRICS_PORTS, Settings, SettingsError, load_settings
from shorty.store.db import small_pool
from shorty.store.errors import UNAVAILABLE

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DATA_DIR = ".shorty-data"


class BadSettings(click.ClickException):
    exit_code = 2

    def __init__(self, error: SettingsError) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  {line}" for line in error.problems))


def settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise BadSettings(exc) from None


def data_dir_option(func: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=DEFAULT_DATA_DIR,
        envvar="SHORTY_DATA_DIR",
        show_default=True,
        help="Where the embedded PostgreSQL and Redis keep their data "
        "(used when SHORTY_DATABASE_URL / SHORTY_REDIS_URL are not set).",
    )(func)


@contextmanager
def server_url(
    config: Settings, data_dir: Path, kind: Literal["database", "redis"]
) -> Iterator[str]:
    """SHORTY_DATABASE_URL / SHORTY_REDIS_URL, or else the embedded server under
    ``data_dir`` (started if needed, and stopped after unless another process such as
    `shorty dev` still uses it)."""
    given = config.database_url if kind == "database" else config.redis_url
    if given is not None:
        yield given.get_secret_value()
        return
    try:
        servers = embedded.start(data_dir, postgres=kind == "database", redis=kind == "redis")
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(f"SHORTY_{kind.upper()}_URL is not set and {exc}") from None
    try:
        url = servers.database_url or servers.redis_url
        assert url is not None
        yield url
    finally:
        servers.stop()


def database_url(config: Settings, data_dir: Path) -> AbstractContextManager[str]:
    return server_url(config, data_dir, "database")


def domain_errors(func: F) -> F:
    """Turn the errors a person can act on (bad email, unknown key, unmigrated or
    unreachable database) into a one-line message instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DomainError as exc:
            raise click.ClickException(exc.message) from None
        except asyncpg.UndefinedTableError:
            raise click.ClickException(
                "The database has no Shorty tables yet; run `shorty migrate` first."
            ) from None
        except UNAVAILABLE as exc:
            raise click.ClickException(
                f"Cannot reach PostgreSQL ({type(exc).__name__}); check SHORTY_DATABASE_URL."
            ) from None

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shorty")
def main() -> None:
    """Shorty, a Kubernetes-native URL shortener.

    Settings come from SHORTY_* environment variables (see README).
    """


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface of every service and of their metrics.",
)
@click.option("--api-port", default=8000, show_default=True, help="Port of the API service.")
@click.option("--redirect-port", default=8080, show_default=True, help="Port of the redirects.")
@data_dir_option
@domain_errors
def dev(host: str, api_port: int, redirect_port: int, data_dir: Path) -> None:
    """Run everything locally: embedded PostgreSQL and Redis, migrations, API,
    redirect service and worker. Prints the URLs, an admin login and an API key.

    Each service's metrics get a port of their own: 9100, 9101, 9102, or free
    ones when those are taken (none with SHORTY_METRICS_PORT=0)."""
    from shorty.dev import run_dev

    try:
        run_dev(
            settings(),
            host=host,
            api_port=api_port,
            redirect_port=redirect_port,
            data_dir=data_dir,
        )
    except embedded.EmbeddedUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def serve() -> None:
    """Run one service in the foreground (needs SHORTY_DATABASE_URL and SHORTY_REDIS_URL)."""


def server_settings() -> Settings:
    """Settings for a service: SHORTY_DATABASE_URL and SHORTY_REDIS_URL required."""
    config = settings()
    try:
        config.require_servers()
    except SettingsError as exc:
        raise BadSettings(exc) from None
    return config


async def provision(config: Settings) -> None:
    """SHORTY_INITIAL_API_KEY, if set, becomes an admin key (store/bootstrap.py)."""
    from shorty.store.bootstrap import ensure_initial_api_key

    assert config.initial_api_key is not None
    database, _ = config.require_servers()
    async with small_pool(database) as pool:
        await ensure_initial_api_key(
            pool, config.initial_api_key.get_secret_value(), config.initial_admin_email
        )


def metrics_options(service: str, host_default: str | None = None) -> Callable[[F], F]:
    """``--metrics-host`` (by default the service's ``--host``) and ``--metrics-port``
    of a ``shorty serve`` command."""

    def add(func: F) -> F:
        port = click.option(
            "--metrics-port",
            type=click.IntRange(0, 65_535),
            default=None,
            help="Port of the Prometheus metrics, never the public port (0: none). "
            f"This option, else SHORTY_METRICS_PORT, else {METRICS_PORTS[service]}.",
        )
        host = click.option(
            "--metrics-host",
            default=host_default,
            show_default=True if host_default else "same as --host",
            help="Interface of the metrics listener.",
        )
        return host(port(func))

    return add


@contextmanager
def serving_metrics(
    config: Settings, service: str, host: str, option: int | None, public_port: int = 0
) -> Iterator[None]:
    """The service's metrics on a listener of their own while the block runs.

    Opened before the service starts, so that a busy port is one line (raised in the
    lifespan, uvicorn would log a traceback) and the public port never opens."""
    from shorty.obs.exposition import MetricsPortBusy, metrics_listener

    port = config.metrics_port_of(service) if option is None else option
    if port and port == public_port:
        raise click.ClickException(
            f"cannot serve metrics on the public port {port}; choose another port with"
            " --metrics-port or SHORTY_METRICS_PORT (0: none)"
        )
    with ExitStack() as stack:
        try:
            stack.enter_context(metrics_listener(host, port))
        except MetricsPortBusy as exc:
            raise click.ClickException(str(exc)) from None
        yield


def _serve_http(
    service: str, host: str, port: int, metrics_host: str | None, metrics_port: int | None
) -> None:
    from shorty.obs.logging import configure_logging
    from shorty.web.server import serve

    config = server_settings()
    configure_logging(config.log_level, service)
    app: ASGIApp
    if service == "api":
        from shorty.api.app import create_app as create_api

        if config.initial_api_key is not None:
            # Before the server starts, so a refusal stops it with one clear line (in
            # the lifespan, uvicorn would print a traceback); the app then skips it.
            domain_errors(asyncio.run)(provision(config))

        app = create_api(config, provision=False)
    else:
        from shorty.redirect.app import create_app as create_redirect

        app = create_redirect(config)
        # The hot path allocates a few short-lived objects per request. Everything
        # loaded so far is moved out of the collector's sight, and young collections
        # run less often: both measured to cut p99 (docs/performance.md).
        gc.freeze()
        gc.set_threshold(20_000, 50, 50)
    with serving_metrics(config, service, metrics_host or host, metrics_port, port):
        serve(
            app,
            host=host,
            port=port,
            loop="uvloop",
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            server_header=False,
            # X-Forwarded-For is read by Shorty itself, from SHORTY_TRUSTED_PROXIES only.
            proxy_headers=False,
            timeout_graceful_shutdown=10,
        )


@serve.command("api")
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")  # noqa: S104
@click.option("--port", default=8000, show_default=True, help="Port to listen on.")
@metrics_options("api")
def serve_api(host: str, port: int, metrics_host: str | None, metrics_port: int | None) -> None:
    """The JSON API (/api/v1/...), with /livez and /readyz; its metrics on their own port."""
    _serve_http("api", host, port, metrics_host, metrics_port)


@serve.command("redirect")
@click.option("--host", default="0.0.0.0", show_default=True, help="Interface to listen on.")  # noqa: S104
@click.option("--port", default=8080, show_default=True, help="Port to listen on.")
@metrics_options("redirect")
def serve_redirect(
    host: str, port: int, metrics_host: str | None, metrics_port: int | None
) -> None:
    """The public redirects (GET|HEAD /<code>), with /livez and /readyz; its metrics on
    their own port."""
    _serve_http("redirect", host, port, metrics_host, metrics_port)


@serve.command("worker")
# Every interface, like the other services' --host: Prometheus scrapes the pod's address.
@metrics_options("worker", "0.0.0.0")  # noqa: S104
def serve_worker(metrics_host: str, metrics_port: int | None) -> None:
    """Background jobs: outbox relay, click ingestion, rollups, cache updates, retention.

    Serves its metrics (any path: also its liveness probe) on
    --metrics-host:--metrics-port; like the other services' --host, on every
    interface by default. Stops on SIGTERM/SIGINT.
    """
    from shorty.obs.logging import configure_logging
    from shorty.worker.main import run_worker

    config = server_settings()
    configure_logging(config.log_level, "worker")
    with serving_metrics(config, "worker", metrics_host, metrics_port):
        asyncio.run(run_worker(config))


@main.command("migrate")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@data_dir_option
@domain_errors
def migrate_cmd(revision: str, data_dir: Path) -> None:
    """Bring the database schema up to date (safe to run repeatedly and concurrently)."""
    from shorty.store import migrate

    with database_url(settings(), data_dir) as url:
        migrate.upgrade(url, revision)
    click.echo(f"Database migrated to {revision}.")


@main.group()
def user() -> None:
    """Manage users."""


@user.command("create")
@click.option("--email", required=True, help="The user's email (their login).")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for if not given. At least 10 characters.",
)
@click.option("--admin", is_flag=True, help="Give the user the admin role.")
@data_dir_option
@domain_errors
def user_create(email: str, password: str, admin: bool, data_dir: Path) -> None:
    """Create a user who can log in and own links."""
    from shorty.store.users import UserStore

    async def create(url: str) -> None:
        async with small_pool(url) as pool:
            created = await UserStore(pool).create(
                email, password, role="admin" if admin else "user"
            )
        click.echo(f"Created {created.role} {created.email} (id {created.id}).")

    with database_url(settings(), data_dir) as url:
        asyncio.run(create(url))


@main.group()
def apikey() -> None:
    """Manage API keys (sent as 'Authorization: Bearer <key>')."""


@apikey.command("create")
@click.option("--email", required=True, help="The user the key acts as.")
@click.option("--name", default="", help="A label to tell keys apart.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(sorted(SCOPES)),
    help=f"Repeat for several (default: {', '.join(DEFAULT_SCOPES)}).",
)
@data_dir_option
@domain_errors
def apikey_create(email: str, name: str, scopes: tuple[str, ...], data_dir: Path) -> None:
    """Create a key and print it. It is shown only this once.

    A key holds only scopes its owner's role grants: 'admin' only for an admin
    (`shorty user create --admin`). Each user holds at most SHORTY_MAX_KEYS_PER_USER
    live keys."""
    from shorty.core.errors import InvalidAccount
    from shorty.store.keys import KeyStore
    from shorty.store.users import UserStore

    config = settings()

    async def create(url: str) -> str:
        async with small_pool(url) as pool:
            owner = await UserStore(pool).by_email(email)
            if owner is None:
                raise InvalidAccount(f"No user has the email '{email}'.")
            _, raw = await KeyStore(pool, max_live=config.max_keys_per_user).create(
                owner.id, name=name, scopes=scopes or DEFAULT_SCOPES
            )
            return raw

    with database_url(config, data_dir) as url:
        raw = asyncio.run(create(url))
    click.echo(raw)


@apikey.command("list")
@click.option("--email", default=None, help="Only this user's keys.")
@data_dir_option
@domain_errors
def apikey_list(email: str | None, data_dir: Path) -> None:
    """List keys (prefix only; the full key is never stored)."""
    from shorty.core.accounts import ApiKey
    from shorty.store.keys import KeyStore
    from shorty.store.users import UserStore

    async def fetch(url: str) -> list[ApiKey]:
        async with small_pool(url) as pool:
            owner_id = None
            if email is not None:
                owner = await UserStore(pool).by_email(email)
                if owner is None:
                    return []
                owner_id = owner.id
            return await KeyStore(pool).list(user_id=owner_id)

    with database_url(settings(), data_dir) as url:
        keys = asyncio.run(fetch(url))
    rows = [("ID", "PREFIX", "OWNER", "NAME", "SCOPES", "CREATED", "STATUS")]
    for key in keys:
        status = "revoked" if key.revoked_at else "active"
        if (
            key.expires_at
            and status == "active"
            and key.expires_at < datetime.now(key.expires_at.tzinfo)
        ):
            status = "expired"
        rows.append(
            (
                str(key.id),
                key.prefix + "...",
                key.email,
                key.name or "-",
                ",".join(key.scopes),
                key.created_at.strftime("%Y-%m-%d %H:%M"),
                status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@apikey.command("revoke")
@click.argument("key")
@data_dir_option
@domain_errors
def apikey_revoke(key: str, data_dir: Path) -> None:
    """Revoke the key with this id or visible prefix (as `apikey list` shows it), and
    every key it minted."""
    from shorty.store.keys import KeyStore

    async def revoke(url: str) -> str:
        async with small_pool(url) as pool:
            revoked = await KeyStore(pool).revoke(key.removesuffix("..."))
            return f"Revoked key {revoked.id} ({revoked.prefix}...) of {revoked.email}."

    with database_url(settings(), data_dir) as url:
        click.echo(asyncio.run(revoke(url)))


def with_redis(data_dir: Path, action: Callable[[Any], Any]) -> Any:
    """Run ``action(client)`` on an asyncio Redis client; a connection failure becomes
    a one-line message."""
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    async def run(url: str) -> Any:
        client = Redis.from_url(url, socket_timeout=10)
        try:
            return await action(client)
        finally:
            await client.aclose()

    with server_url(settings(), data_dir, "redis") as url:
        try:
            return asyncio.run(run(url))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise click.ClickException(
                f"Cannot reach Redis ({type(exc).__name__}); check SHORTY_REDIS_URL."
            ) from None


@main.group()
def dlq() -> None:
    """The dead-letter stream: stream entries that failed every delivery.

    Fix the cause (the error says what it was), then `replay` the letters; the
    consumers are idempotent, so a letter replayed twice still counts once.
    """


@dlq.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--after", default="-", help="Start after this letter ID (for paging).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@data_dir_option
def dlq_list(limit: int, after: str, as_json: bool, data_dir: Path) -> None:
    """List letters, oldest first."""
    import json

    from shorty.worker import dlq as letters

    if after != "-":
        _letter_ids((after,))

    async def fetch(client: Any) -> tuple[int, list[letters.Letter]]:
        return await letters.size(client), await letters.letters(client, count=limit, after=after)

    total, page = with_redis(data_dir, fetch)
    if as_json:
        for one in page:
            click.echo(json.dumps(one.describe()))
        return
    click.echo(f"{total} letter(s) in the dead-letter stream.")
    for one in page:
        when = one.failed_at.strftime("%Y-%m-%d %H:%M:%S") if one.failed_at else "?"
        error = one.error if len(one.error) <= 80 else one.error[:77] + "..."
        click.echo(f"{one.id}  {when}  {one.stream}/{one.group}  x{one.deliveries}  {error}")


@dlq.command("show")
@click.argument("letter_id")
@data_dir_option
def dlq_show(letter_id: str, data_dir: Path) -> None:
    """Show one letter in full, as JSON."""
    import json

    from shorty.worker import dlq as letters

    _letter_ids((letter_id,))
    found = with_redis(data_dir, lambda client: letters.letter(client, letter_id))
    if found is None:
        raise click.ClickException(f"No letter {letter_id} in the dead-letter stream.")
    click.echo(json.dumps(found.describe(), indent=2))


def _letter_ids(ids: tuple[str, ...]) -> None:
    from shorty.worker.dlq import LETTER_ID

    bad = [one for one in ids if not LETTER_ID.fullmatch(one)]
    if bad:
        raise click.UsageError(
            f"Not a letter ID: {', '.join(bad)} (IDs look like 1795322038334-0)."
        )


def _chosen(ids: tuple[str, ...], every: bool) -> list[str] | None:
    if every == bool(ids):
        raise click.UsageError("Name letter IDs, or pass --all (not both).")
    _letter_ids(ids)
    return None if every else list(ids)


@dlq.command("replay")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Replay every letter.")
@data_dir_option
def dlq_replay(ids: tuple[str, ...], every: bool, data_dir: Path) -> None:
    """Write letters back to their streams (after fixing what made them fail)."""
    from shorty.worker import dlq as letters

    wanted = _chosen(ids, every)

    async def run(client: Any) -> tuple[int, list[str]]:
        if wanted is None:
            replayed = 0
            async for page in letters.each_page(client):
                replayed += len(await letters.replay(client, page))
            return replayed, []
        found = [await letters.letter(client, one) for one in wanted]
        missing = [one for one, letter in zip(wanted, found, strict=True) if letter is None]
        return len(await letters.replay(client, [f for f in found if f is not None])), missing

    try:
        replayed, missing = with_redis(data_dir, run)
    except letters.NotReplayable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Replayed {replayed} letter(s).")
    if missing:
        raise click.ClickException(f"Not found: {', '.join(missing)}")


@dlq.command("purge")
@click.argument("ids", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Delete every letter.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@data_dir_option
def dlq_purge(ids: tuple[str, ...], every: bool, yes: bool, data_dir: Path) -> None:
    """Delete letters for good."""
    from shorty.worker import dlq as letters

    wanted = _chosen(ids, every)
    what = "every letter" if wanted is None else f"{len(wanted)} letter(s)"
    if not yes:
        click.confirm(f"Delete {what} from the dead-letter stream for good?", abort=True)
    purged = with_redis(data_dir, lambda client: letters.purge(client, wanted))
    click.echo(f"Purged {purged} letter(s).")
