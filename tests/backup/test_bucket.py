"""``shorty backup`` with an S3-compatible bucket, against a real S3 HTTP server (moto's,
its own process on 127.0.0.1, started once for the module) and the real PostgreSQL:
upload checked, keep N in the bucket, list, restore from the bucket, failures that
prune nothing, credentials never shown."""

import os
import tempfile
import time
from pathlib import Path

import pytest

from tests.backup.s3server import (
    ACCESS_KEY,
    SECRET_KEY,
    free_port,
    new_bucket,
    s3_client,
    s3_server,
)
from tests.backup.test_jobs import backup_env, contents, shorty


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        yield url


@pytest.fixture
def s3(endpoint):
    return s3_client(endpoint)


@pytest.fixture
def bucket(s3):
    return new_bucket(s3)


def s3_env(endpoint, bucket, prefix="prod/db", url=None):
    return {
        **(backup_env(url) if url else {}),
        "SHORTY_BACKUP_S3_BUCKET": bucket,
        "SHORTY_BACKUP_S3_PREFIX": prefix,
        "SHORTY_BACKUP_S3_ENDPOINT": endpoint,
        "SHORTY_BACKUP_S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "SHORTY_BACKUP_DIR": None,
    }


def keys(s3, bucket):
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def assert_no_credentials(*results):
    for result in results:
        assert ACCESS_KEY not in result.output
        assert SECRET_KEY not in result.output


def test_create_uploads_the_archive_and_keep_prunes_only_backups_under_the_prefix(
    clean, endpoint, s3, bucket
):
    old = [f"prod/db/shorty-2026010{day}T000000Z.dump" for day in range(1, 6)]
    strangers = [
        "prod/db/notes.txt",
        "prod/db/shorty-latest.dump",
        "prod/db/nested/shorty-20260101T000000Z.dump",
        "prod/other/shorty-20260101T000000Z.dump",
        "shorty-20260101T000000Z.dump",
    ]
    for key in [*old, *strangers]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"old")
    temporaries = set(Path(tempfile.gettempdir()).glob("shorty-backup-*"))

    made = shorty(
        "backup", "create", "--keep", "3", env=s3_env(endpoint, bucket, url=clean.database_url)
    )
    assert made.exit_code == 0, made.output
    uri = made.stdout.strip()
    new_key = uri.removeprefix(f"s3://{bucket}/")
    assert uri.startswith(f"s3://{bucket}/prod/db/shorty-")
    assert keys(s3, bucket) == sorted([*old[-2:], new_key, *strangers])
    size = s3.head_object(Bucket=bucket, Key=new_key)["ContentLength"]
    body = s3.get_object(Bucket=bucket, Key=new_key)["Body"].read()
    assert len(body) == size > 1000
    assert body.startswith(b"PGDMP")  # a custom-format archive
    assert f"Uploaded to {uri} ({size} bytes)." in made.stderr
    assert f"Deleted s3://{bucket}/{old[0]} (beyond --keep 3)." in made.stderr
    # With no --to, the dump lived in a temporary folder, gone now.
    assert set(Path(tempfile.gettempdir()).glob("shorty-backup-*")) <= temporaries

    listed = shorty("backup", "list", env=s3_env(endpoint, bucket))
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.stdout.splitlines()]
    assert [row[-1] for row in rows] == [f"s3://{bucket}/{key}" for key in [*old[-2:], new_key]]
    assert rows[0][:2] == ["2026-01-04T00:00:00Z", "3"]
    assert rows[-1][1] == str(size)
    # --from takes an s3:// URI as it takes a folder.
    again = shorty(
        "backup", "list", "--from", f"s3://{bucket}/prod/db/", env=s3_env(endpoint, "unused")
    )
    assert again.stdout == listed.stdout
    assert_no_credentials(made, listed, again)


def test_a_backup_restored_from_the_bucket_holds_every_row(
    seeded, clean, scratch, endpoint, s3, bucket, tmp_path
):
    before = contents(clean.database_url)
    env = s3_env(endpoint, bucket, prefix="", url=clean.database_url)
    made = shorty("backup", "create", "--to", str(tmp_path), env=env)
    assert made.exit_code == 0, made.output
    local = Path(made.stdout.strip())  # with --to, the local path is printed
    assert local.parent == tmp_path
    uploaded = s3.get_object(Bucket=bucket, Key=local.name)["Body"].read()
    assert uploaded == local.read_bytes()
    local.unlink()  # the restore can only come from the bucket

    named = shorty("backup", "restore", f"s3://{bucket}/{local.name}", env=s3_env(
        endpoint, "unused", url=scratch))  # fmt: skip
    assert named.exit_code == 0, named.output
    assert contents(scratch) == before
    assert f"Restored s3://{bucket}/{local.name}." in named.stderr

    # The bucket alone: its newest backup, over what is now there.
    newest = shorty("backup", "restore", f"s3://{bucket}", "--clean", env=s3_env(
        endpoint, "unused", url=scratch))  # fmt: skip
    assert newest.exit_code == 0, newest.output
    assert contents(scratch) == before
    assert_no_credentials(made, named, newest)


def test_restore_from_an_empty_prefix_fails_and_says_so(clean, scratch, endpoint, bucket):
    result = shorty("backup", "restore", f"s3://{bucket}/nothing/here", env=s3_env(
        endpoint, bucket, url=scratch))  # fmt: skip
    assert result.exit_code == 1
    assert f"no backups (shorty-*.dump) in s3://{bucket}/nothing/here/" in result.stderr


def closed_endpoint():
    return f"http://127.0.0.1:{free_port()}"


@pytest.mark.parametrize(
    ("where", "said"),
    [
        (lambda endpoint, bucket: (endpoint, f"{bucket}-missing"), "NoSuchBucket"),
        (lambda endpoint, bucket: (closed_endpoint(), bucket), "EndpointConnectionError"),
    ],
    ids=["no-such-bucket", "unreachable-endpoint"],
)
def test_a_failed_upload_exits_1_and_prunes_nothing(
    clean, endpoint, s3, bucket, tmp_path, where, said
):
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "shorty-20260101T000000Z.dump").write_bytes(b"the only backup")
    in_bucket = [f"prod/db/shorty-2026010{day}T000000Z.dump" for day in (1, 2)]
    for key in in_bucket:
        s3.put_object(Bucket=bucket, Key=key, Body=b"old")
    target_endpoint, target_bucket = where(endpoint, bucket)
    started = time.monotonic()
    failed = shorty("backup", "create", "--to", str(folder), "--keep", "1", env=s3_env(
        target_endpoint, target_bucket, url=clean.database_url))  # fmt: skip
    took = time.monotonic() - started
    assert failed.exit_code == 1
    assert failed.stderr.startswith(
        f"Error: backup failed: upload to s3://{target_bucket}/prod/db/shorty-"
    )
    assert said in failed.stderr, failed.stderr
    assert took < 60  # bounded: timeouts and a fixed number of attempts
    # Nothing pruned: the old backup stays beside the new local one, and in the bucket.
    names = sorted(os.listdir(folder))
    assert names[0] == "shorty-20260101T000000Z.dump"
    assert len(names) == 2
    assert keys(s3, bucket) == in_bucket
    assert_no_credentials(failed)


def test_create_needs_a_folder_or_a_bucket(clean):
    result = shorty("backup", "create", env={**backup_env(clean.database_url),
                                             "SHORTY_BACKUP_DIR": None,
                                             "SHORTY_BACKUP_S3_BUCKET": None})  # fmt: skip
    assert result.exit_code == 2
    assert "give --to DIR or --s3-bucket" in result.stderr
