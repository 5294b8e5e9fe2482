"""`make fuzz`: schemathesis, every check, against a live `shorty serve api`.

A throwaway database on the embedded PostgreSQL and Redis (or on the servers
SHORTY_DATABASE_URL / SHORTY_REDIS_URL name; the Redis database is flushed),
a live API with its rate limits off, then `st run` twice with the repository's
schemathesis.toml: once with a disposable regular user's key, once with an
admin key. The run fails if either finds anything.

    python scripts/fuzz.py [--examples N] [--seed S] [--phases examples,coverage,...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "schemathesis.toml"
HOOKS = "tests.api.fuzz_hooks"
SEED = 20261204
LINKS = 20  # links each fuzzing user owns, so operations on a code reach past the 404


@dataclass(frozen=True)
class Credential:
    name: str
    key: str
    user_id: int
    key_id: int
    codes: tuple[str, ...]  # links the credential's user owns


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def servers(data_dir: Path) -> Iterator[tuple[str, str]]:
    """The admin URL of a PostgreSQL server and a Redis URL: given, or embedded."""
    from shorty import embedded

    given_db = os.environ.get("SHORTY_DATABASE_URL")
    given_redis = os.environ.get("SHORTY_REDIS_URL")
    started = embedded.start(data_dir, postgres=not given_db, redis=not given_redis)
    try:
        database = given_db or started.database_url
        redis_url = given_redis or started.redis_url
        assert database is not None
        assert redis_url is not None
        yield database, redis_url
    finally:
        started.stop()


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    from shorty.embedded import drop_database, ensure_database
    from shorty.store import migrate

    name = f"shorty_fuzz_{secrets.token_hex(4)}"
    url = asyncio.run(ensure_database(admin_url, name))
    try:
        migrate.upgrade(url)
        yield url
    finally:
        asyncio.run(drop_database(admin_url, name))


async def credentials(database_url: str) -> list[Credential]:
    """A regular user's key (every scope a user may hold) and an admin's."""
    import asyncpg

    from shorty.core.accounts import ROLE_SCOPES
    from shorty.store.keys import KeyStore
    from shorty.store.links import LinkStore
    from shorty.store.users import UserStore

    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    made = []
    try:
        for name, role in (("user", "user"), ("admin", "admin")):
            user = await UserStore(pool).create(f"fuzz-{name}@example.com", None, role=role)
            scopes = tuple(sorted(ROLE_SCOPES[role]))
            key, raw = await KeyStore(pool).create(user.id, name="fuzz", scopes=scopes)
            codes = []
            for number in range(LINKS):
                link = await LinkStore(pool).create(
                    {"target": f"https://example.com/{name}/{number}"},
                    owner_id=user.id,
                    alias=f"fuzz-{name}-{number:02d}",
                )
                codes.append(link.code)
            made.append(Credential(name, raw, user.id, key.id, tuple(codes)))
    finally:
        await pool.close()
    return made


@contextmanager
def live_api(database_url: str, redis_url: str, log: Path) -> Iterator[str]:
    from shorty.processes import Child, NotReady, http_ok

    port = free_port()
    env = {
        **os.environ,
        "SHORTY_DATABASE_URL": database_url,
        "SHORTY_REDIS_URL": redis_url,
        "SHORTY_METRICS_PORT": "0",
        "SHORTY_ACCESS_LOG": "false",
        "SHORTY_DRAIN_DELAY": "0",
        "SHORTY_LOG_LEVEL": "WARNING",
        "SHORTY_JWT_SECRET": secrets.token_urlsafe(32),
        "SHORTY_SECRET_KEY": secrets.token_urlsafe(32),
        **{
            f"SHORTY_{name}": "off"
            for name in (
                "LIMIT_PER_KEY",
                "LIMIT_PER_USER",
                "LIMIT_PER_IP",
                "LOGIN_LIMIT_PER_IP",
                "LOGIN_LIMIT_PER_EMAIL",
                "LOGIN_LIMIT_PER_ACCOUNT",
            )
        },
    }
    command = [sys.executable, "-m", "shorty", "serve", "api", "--host", "127.0.0.1"]
    api = Child("api", [*command, "--port", str(port)], env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            api.wait_ready(http_ok(url + "/livez"), 30)
        except NotReady as error:
            raise SystemExit(f"the API did not start: {error}") from None
        yield url
    finally:
        api.stop(30)


def schemathesis(url: str, who: Credential, args: argparse.Namespace) -> int:
    """`st run` with the repository's configuration, as ``who``."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url}/api/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {who.key}",
        "--seed",
        str(args.seed),
        "--max-examples",
        str(args.examples),
        "--workers",
        "1",
    ]
    if args.phases:
        command += ["--phases", args.phases]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": str(ROOT),
        # The fuzzing credential's own key and user are left alone (hooks): revoking
        # or limiting them would turn the rest of the run into 401s and 429s.
        "SHORTY_FUZZ_OWN_KEY_ID": str(who.key_id),
        "SHORTY_FUZZ_OWN_USER_ID": str(who.user_id),
        "SHORTY_FUZZ_CODES": ",".join(who.codes),
    }
    print(f"\n== schemathesis as the {who.name} (seed {args.seed}) ==", flush=True)
    return subprocess.run(command, env=env, check=False).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="examples per operation")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--phases", default="", help="e.g. examples,coverage,fuzzing")
    parser.add_argument(
        "--data-dir", type=Path, default=ROOT / ".shorty-data" / "fuzz", help="embedded servers"
    )
    args = parser.parse_args()
    failed = []
    with (
        servers(args.data_dir) as (admin_url, redis_url),
        scratch_database(admin_url) as database_url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        import redis

        redis.Redis.from_url(redis_url).flushdb()
        who = asyncio.run(credentials(database_url))
        with live_api(database_url, redis_url, Path(scratch) / "api.log") as url:
            for credential in who:
                if schemathesis(url, credential, args):
                    failed.append(credential.name)
    if failed:
        print(f"\nschemathesis found problems as: {', '.join(failed)}", file=sys.stderr)
        return 1
    print("\nschemathesis found nothing, as a user and as an admin.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
