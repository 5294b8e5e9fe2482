"""moto's S3 server as a separate process on 127.0.0.1: a real S3 HTTP endpoint for
the backup tests (an emulated dependency, as kmock is for Kubernetes)."""

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config

ACCESS_KEY = f"AKIASHORTY{secrets.token_hex(5).upper()}"
SECRET_KEY = f"shorty-secret-{secrets.token_hex(12)}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def s3_server(log: Path) -> Iterator[str]:
    """Start the server on a free port, wait (30 s at most) until it accepts; its URL."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto's S3 server did not start: {log.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    """The tests' own client of the server, to look into buckets."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def new_bucket(client) -> str:  # type: ignore[no-untyped-def]
    name = f"shorty-backups-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    return name
