"""The backup archives in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2...): upload
checked by size, listing, pruning by count, download for a restore.

An archive's key is ``<prefix>/shorty-<UTC time>.dump``; listing and pruning count only
keys of that form directly under the prefix, so other objects in the bucket are never
touched. Credentials come from boto3's usual sources (``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, a web identity, an instance role), never from an option,
and are masked in every message. Every call is bounded: connect and read timeouts,
and a fixed number of attempts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shorty.backup.files import NAME, STAMP
from shorty.backup.pgtools import BackupError

SCHEME = "s3://"
CONNECT_TIMEOUT = 10  # seconds to open a connection
READ_TIMEOUT = 60  # seconds without a byte from the server
ATTEMPTS = 3  # per request, with botocore's backoff between them
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class Bucket:
    """Where the archives go: a bucket, a folder-like prefix in it ("" or ends with
    "/"), and for a service other than AWS its endpoint URL."""

    name: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None

    def uri(self, key: str = "") -> str:
        return f"{SCHEME}{self.name}/{key or self.prefix}"


def bucket(
    name: str, prefix: str = "", endpoint: str | None = None, region: str | None = None
) -> Bucket:
    """A Bucket, its prefix made folder-like (``backups/db`` → ``backups/db/``)."""
    if not name or "/" in name:
        raise BackupError(f"{name!r} is not a bucket name")
    prefix = prefix.strip("/")
    return Bucket(name, f"{prefix}/" if prefix else "", endpoint or None, region or None)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → (``bucket``, ``some/key``)."""
    name, _, key = uri.removeprefix(SCHEME).partition("/")
    return name, key


@dataclass(frozen=True)
class Remote:
    """A backup in the bucket."""

    key: str
    uri: str
    taken_at: datetime
    size: int


class Store:
    """One bucket's archives, through one boto3 client."""

    def __init__(self, where: Bucket) -> None:
        import boto3
        from botocore.config import Config

        self.where = where
        config = Config(
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"max_attempts": ATTEMPTS, "mode": "standard"},
            # Path-style (endpoint/bucket/key) is what MinIO and Ceph answer without
            # wildcard DNS; AWS itself takes virtual-hosted style.
            s3={"addressing_style": "path" if where.endpoint else "auto"},
        )
        with failing_as("cannot use the bucket"):
            self._client: Any = boto3.client(
                "s3", endpoint_url=where.endpoint, region_name=where.region, config=config
            )

    def upload(self, path: Path) -> Remote:
        """Upload the archive at ``path`` under the prefix; checked by reading back the
        object's size (boto3 also sends a checksum the server verifies)."""
        key = self.where.prefix + path.name
        size = path.stat().st_size
        with failing_as(f"upload to {self.where.uri(key)} failed"):
            self._client.upload_file(str(path), self.where.name, key)
            head = self._client.head_object(Bucket=self.where.name, Key=key)
        if head["ContentLength"] != size:
            raise BackupError(
                f"{self.where.uri(key)} holds {head['ContentLength']} bytes,"
                f" the archive {size}: the upload is not whole"
            )
        return self._remote(key, size)

    def backups(self) -> list[Remote]:
        """The backups directly under the prefix, oldest first."""
        found = []
        with failing_as(f"cannot list {self.where.uri()}"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.where.name, Prefix=self.where.prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    if NAME.fullmatch(item["Key"].removeprefix(self.where.prefix)):
                        found.append(self._remote(item["Key"], item["Size"]))
        return sorted(found, key=lambda backup: backup.taken_at)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest backups under the prefix; their URIs."""
        old = self.backups()[:-keep]
        with failing_as(f"cannot prune {self.where.uri()}"):
            for backup in old:
                self._client.delete_object(Bucket=self.where.name, Key=backup.key)
        return [backup.uri for backup in old]

    def newest(self) -> Remote:
        found = self.backups()
        if not found:
            raise BackupError(f"no backups (shorty-*.dump) in {self.where.uri()}")
        return found[-1]

    def download(self, key: str, folder: Path) -> Path:
        """Fetch the object ``key`` into ``folder``; the file, checked by size."""
        target = folder / Path(key).name
        with failing_as(f"download of {self.where.uri(key)} failed"):
            head = self._client.head_object(Bucket=self.where.name, Key=key)
            self._client.download_file(self.where.name, key, str(target))
        if target.stat().st_size != head["ContentLength"]:
            raise BackupError(f"{self.where.uri(key)}: the download is not whole")
        return target

    def _remote(self, key: str, size: int) -> Remote:
        match = NAME.fullmatch(Path(key).name)
        assert match is not None
        taken_at = datetime.strptime(match[1], STAMP).replace(tzinfo=UTC)
        return Remote(key, self.where.uri(key), taken_at, size)


@contextmanager
def failing_as(what: str) -> Iterator[None]:
    """botocore's errors as a BackupError saying ``what`` and why, credentials masked."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        said = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
        raise BackupError(f"{what} ({mask(said)})") from None
    except (BotoCoreError, Boto3Error, OSError) as exc:
        # Boto3Error: upload_file's S3UploadFailedError, which words the ClientError.
        raise BackupError(f"{what} ({type(exc).__name__}: {mask(str(exc))})") from None


def mask(text: str) -> str:
    for name in CREDENTIALS:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text
