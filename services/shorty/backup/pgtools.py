"""The PostgreSQL client tools (``pg_dump``, ``pg_restore``): found, and run with a
deadline and without the password on their command line.

A restore pipes ``pg_restore``'s SQL into ``psql`` rather than letting pg_restore
connect: so that emptying the target (``--clean``) and the restore are one transaction
(pg_restore's own ``--clean`` fails on the indexes of partitioned tables).

A database URL is split in two: the URL without its password, which the tools get as
``--dbname`` (libpq reads the same ``postgresql://user@/db?host=/socket/dir`` form
asyncpg does), and the password, which they get as ``PGPASSWORD``. Whatever they print
is shown with the password masked."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

# Without a connect_timeout of its own, libpq waits for an unreachable host as long as
# the kernel does (minutes); the dump's own deadline would still end it, later.
CONNECT_TIMEOUT = "10"
VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


class BackupError(Exception):
    """A backup or restore that failed; the message is safe to print (no password)."""


@dataclass(frozen=True)
class Connection:
    """A database URL for libpq: ``dsn`` (no password) for ``--dbname``, the password
    for ``PGPASSWORD``."""

    dsn: str
    password: str | None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def redact(self, text: str) -> str:
        if not self.password:
            return text
        for form in {self.password, quote(self.password, safe="")}:
            text = text.replace(form, "***")
        return text


def connection(url: str) -> Connection:
    """Split ``url`` (``postgresql://`` or ``postgres://``) into a password-free URL and
    the password, taken from the user part or a ``password=`` query parameter."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise BackupError("the database URL must be a postgresql:// URL")
    password = None
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at:
        user, colon, secret = userinfo.partition(":")
        if colon:
            password = unquote(secret)
        netloc = f"{user}@{hosts}" if user else hosts
    else:
        netloc = hosts
    query = parts.query
    params = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in params):
        password = next(value for name, value in params if name == "password")
        query = urlencode([(n, v) for n, v in params if n != "password"], quote_via=quote)
    dsn = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return Connection(dsn, password)


@dataclass(frozen=True)
class Tool:
    path: Path
    major: int


def find_tool(name: str, pg_bin: Path | None = None) -> Tool:
    """``pg_dump`` or ``pg_restore``: the one in ``pg_bin`` if given, else the newest of
    those on PATH, in /usr/lib/postgresql/*/bin and in pgserver's (the embedded
    server's, for laptops and tests). Newest, because pg_dump refuses a server newer
    than itself and pg_restore an archive from a newer pg_dump."""
    if pg_bin is not None:
        folders = [pg_bin]
    else:
        on_path = shutil.which(name)
        folders = [Path(on_path).parent] if on_path else []
        folders += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        embedded = embedded_bin()
        folders += [embedded] if embedded else []
    found = [tool for folder in folders if (tool := _probe(folder / name)) is not None]
    if not found:
        where = str(pg_bin) if pg_bin else "PATH, /usr/lib/postgresql/*/bin or pgserver"
        raise BackupError(
            f"{name} not found in {where}; install the PostgreSQL client"
            " (Debian/Ubuntu: postgresql-client-16, Alpine: postgresql16-client)"
        )
    return max(found, key=lambda tool: tool.major)


def embedded_bin() -> Path | None:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def _probe(path: Path) -> Tool | None:
    if not (path.is_file() and os.access(path, os.X_OK)):
        return None
    try:
        done = subprocess.run(  # noqa: S603 (our own path, no shell)
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = VERSION.search(done.stdout)
    return Tool(path, int(match[1])) if done.returncode == 0 and match else None


def run_tool(args: list[str], conn: Connection, timeout: float) -> str:
    """Run a client tool (``args[0]``) with the connection's environment, for at most
    ``timeout`` seconds (then it is killed); its standard output. BackupError, with the
    tail of what it printed (password masked), when it fails or overruns."""
    name = Path(args[0]).name
    try:
        done = subprocess.run(  # noqa: S603 (no shell; the password is in env only)
            args,
            env=conn.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{name} did not finish within {timeout:g} s; stopped") from None
    if done.returncode != 0:
        said = conn.redact(done.stderr.strip())
        tail = "\n".join(said.splitlines()[-10:]) or "(nothing on stderr)"
        raise BackupError(f"{name} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


def run_into_psql(
    script: list[str], psql: list[str], conn: Connection, before: str, timeout: float
) -> None:
    """Pipe the SQL that ``script`` (``pg_restore -f -``) writes into ``psql``, inside
    one transaction that starts with ``before`` and is committed only once ``script``
    has exited 0: a script cut short (a failed or killed pg_restore, a COPY ended by
    end of input) is rolled back when psql's input ends without COMMIT. Both are
    killed after ``timeout`` seconds."""
    env = conn.env()
    with (
        tempfile.TemporaryFile() as script_err,
        tempfile.TemporaryFile() as psql_err,
        subprocess.Popen(  # noqa: S603 (no shell; the password is in env only)
            psql, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err
        ) as consumer,
        subprocess.Popen(  # noqa: S603
            script, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=script_err
        ) as producer,
    ):
        overran = threading.Event()

        def stop() -> None:
            overran.set()
            producer.kill()
            consumer.kill()

        watchdog = threading.Timer(timeout, stop)
        watchdog.start()
        assert consumer.stdin is not None
        assert producer.stdout is not None
        try:
            consumer.stdin.write(f"BEGIN;\n{before}\n".encode())
            shutil.copyfileobj(producer.stdout, consumer.stdin, 1 << 16)
            if producer.wait() == 0:
                consumer.stdin.write(b"COMMIT;\n")
            consumer.stdin.close()
        except BrokenPipeError:
            pass  # psql stopped at an error: its exit code and stderr say which
        finally:
            producer.stdout.close()
            producer.wait()
            consumer.wait()
            watchdog.cancel()
        names = (Path(script[0]).name, Path(psql[0]).name)
        if overran.is_set():
            raise BackupError(f"{names[0]} | {names[1]} did not finish within {timeout:g} s")
        for name, process, err in zip(
            names, (producer, consumer), (script_err, psql_err), strict=True
        ):
            if process.returncode != 0:
                err.seek(0)
                said = conn.redact(err.read().decode(errors="replace").strip())
                tail = "\n".join(said.splitlines()[-10:]) or "(nothing on stderr)"
                raise BackupError(f"{name} failed (exit {process.returncode}):\n{tail}")
