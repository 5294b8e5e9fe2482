"""The chart's backups (templates/backup.yaml): the CronJob running `shorty backup
create` into its PVC, the restore Job, their NetworkPolicy flows and values schema;
and the CronJob's own args and env run against the real PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from shorty.backup.files import backups_in
from shorty.backup.pgtools import find_tool
from tests.backup.s3server import ACCESS_KEY, SECRET_KEY, new_bucket, s3_client, s3_server
from tests.chart.render import (
    CHART,
    NEWEST,
    OLDEST,
    ROOT,
    component,
    env_of,
    helm,
    named,
    of_kind,
    pod_specs,
    render,
)

PRODUCTION = "production-like-values.yaml"
ARCHIVE = "shorty-20261206T031700Z.dump"
RESTORE = ("backup.enabled=true", "backup.restore.enabled=true", f"backup.restore.file={ARCHIVE}")
DATABASE_ENV = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "SHORTY_DATABASE_URL")
S3_ENV = (
    "SHORTY_BACKUP_S3_BUCKET",
    "SHORTY_BACKUP_S3_PREFIX",
    "SHORTY_BACKUP_S3_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
)


def cronjob(objects) -> dict[str, Any]:
    return named(objects, "CronJob", "demo-shorty-backup")


def backup_pod(objects) -> dict[str, Any]:
    return cronjob(objects)["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def entrypoint() -> list[str]:
    """The image's ENTRYPOINT (the pods give `args:` only)."""
    found = re.search(r"^ENTRYPOINT (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert found
    return json.loads(found.group(1))


def test_the_cronjob_backs_up_nightly_into_its_pvc():
    objects = render(PRODUCTION)
    job = cronjob(objects)
    spec = job["spec"]
    assert spec["schedule"] == "17 3 * * *"
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["startingDeadlineSeconds"] == 3600
    assert spec["failedJobsHistoryLimit"] >= 1  # a failed backup stays in `kubectl get jobs`
    assert spec["successfulJobsHistoryLimit"] >= 1
    job_spec = spec["jobTemplate"]["spec"]
    assert job_spec["backoffLimit"] == 1
    assert "ttlSecondsAfterFinished" not in job_spec  # the history limits keep failed Jobs
    pod = backup_pod(objects)
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert "command" not in container  # the image's ENTRYPOINT, shorty
    args = container["args"]
    assert args == ["backup", "create", "--to", "/backups", "--keep", "30", "--timeout", "3600"]
    # The Job outlives the tools' own deadline, with room for the start and the checks.
    assert job_spec["activeDeadlineSeconds"] == int(args[args.index("--timeout") + 1]) + 600
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts["/backups"]]["persistentVolumeClaim"] == {
        "claimName": "demo-shorty-backups"
    }
    claim = named(objects, "PersistentVolumeClaim", "demo-shorty-backups")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["storageClassName"] == "standard-retain"
    assert component(claim) == component(job) == "backup"
    assert container["resources"]["limits"]["memory"]


def test_the_backup_reaches_the_database_as_the_services_do():
    """Same PG* variables and SHORTY_DATABASE_URL as the API, and besides them only the
    bucket's: no Redis, no JWT secret."""
    objects = render(PRODUCTION)
    env = env_of(backup_pod(objects)["containers"][0])
    assert tuple(env) == DATABASE_ENV + S3_ENV
    env = {name: env[name] for name in DATABASE_ENV}
    api = next(pod for name, pod in pod_specs(objects) if name == "api")
    api_env = env_of(api["containers"][0])
    assert env == {name: api_env[name] for name in DATABASE_ENV}


def test_with_a_whole_url_in_a_secret_the_backup_reads_that_url():
    objects = render(
        "external-db-and-redis-values.yaml", sets=("backup.enabled=true", "backup.keep=7")
    )
    env = env_of(backup_pod(objects)["containers"][0])
    assert env["SHORTY_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "shorty-db-app",
        "key": "uri",
    }
    assert "PGPASSWORD" not in env
    assert env["PGHOST"]["value"] == "shorty-db-rw"


@pytest.mark.parametrize("scenario", [None, "kind-minimal-values.yaml"], ids=str)
def test_no_backup_objects_unless_enabled(scenario):
    objects = render(scenario)
    assert of_kind(objects, "CronJob") == []
    assert [job for job in of_kind(objects, "Job") if component(job) == "backup"] == []
    assert [c for c in of_kind(objects, "PersistentVolumeClaim") if component(c) == "backup"] == []


def test_an_existing_claim_is_used_and_none_is_made():
    objects = render(None, sets=("backup.enabled=true", "backup.persistence.existingClaim=old"))
    assert of_kind(objects, "PersistentVolumeClaim") == []
    volumes = {v["name"]: v for v in backup_pod(objects)["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "old"}


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions In/NotIn/Exists)."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator == "NotIn" and value in expression["values"]:
            return False
        if operator == "Exists" and value is None:
            return False
    return True


def flows_of(objects, labels: dict[str, str]) -> dict[str, list[str]]:
    """The policies selecting pods with `labels`, and those admitting them as a peer."""
    policies = of_kind(objects, "NetworkPolicy")
    selecting = [p for p in policies if matches(p["spec"]["podSelector"], labels)]
    admitting = [
        p["metadata"]["name"]
        for p in policies
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if "podSelector" in peer
        and "namespaceSelector" not in peer
        and matches(peer["podSelector"], labels)
    ]
    return {
        "selected by": sorted(p["metadata"]["name"] for p in selecting),
        "egress": sorted(p["metadata"]["name"] for p in selecting if p["spec"].get("egress")),
        "admitted by": sorted(admitting),
    }


def test_the_backup_reaches_postgresql_and_dns_only():
    objects = render(PRODUCTION)
    labels = cronjob(objects)["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert flows_of(objects, labels) == {
        "selected by": [
            "demo-shorty-backup-s3",
            "demo-shorty-database-clients",
            "demo-shorty-default-deny",
            "demo-shorty-dns",
        ],
        "egress": ["demo-shorty-backup-s3", "demo-shorty-database-clients", "demo-shorty-dns"],
        "admitted by": ["demo-shorty-postgresql"],
    }
    (s3,) = named(objects, "NetworkPolicy", "demo-shorty-backup-s3")["spec"]["egress"]
    assert s3 == {
        "to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }
    # Besides the bucket's policy, only those two changed, by naming the backup pods.
    without = render(PRODUCTION, sets=("backup.enabled=false",))
    before = {p["metadata"]["name"]: p for p in of_kind(without, "NetworkPolicy")}
    after = {p["metadata"]["name"]: p for p in of_kind(objects, "NetworkPolicy")}
    assert after.keys() - before.keys() == {"demo-shorty-backup-s3"}
    del after["demo-shorty-backup-s3"]
    changed = sorted(name for name in after if after[name] != before[name])
    assert changed == ["demo-shorty-database-clients", "demo-shorty-postgresql"]
    text = json.dumps([after[name] for name in changed])
    assert text.replace('"migrations", "backup"', '"migrations"') == json.dumps(
        [before[name] for name in changed]
    )


def test_the_restore_job_is_off_by_default_and_runs_once_when_on():
    assert [j for j in of_kind(render(PRODUCTION), "Job") if component(j) == "backup"] == []
    objects = render(None, sets=RESTORE)
    job = named(objects, "Job", "demo-shorty-restore")
    assert "helm.sh/hook" not in job["metadata"].get("annotations", {})  # not every upgrade
    assert job["spec"]["backoffLimit"] == 0
    assert "ttlSecondsAfterFinished" not in job["spec"]  # Helm would recreate it: run again
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"] == ["backup", "restore", f"/backups/{ARCHIVE}", "--timeout", "3600"]
    assert {v["name"]: v for v in pod["volumes"]}["backups"] == {
        "name": "backups",
        "persistentVolumeClaim": {"claimName": "demo-shorty-backups"},
    }
    assert env_of(container) == env_of(backup_pod(objects)["containers"][0])


def test_a_restore_drill_goes_to_a_scratch_database():
    objects = render(
        None,
        sets=(
            *RESTORE,
            "backup.restore.database=shorty_restore",
            "backup.restore.createDatabase=true",
        ),
    )
    container = named(objects, "Job", "demo-shorty-restore")["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["args"][3:] == ["--create-database", "--timeout", "3600"]
    env = env_of(container)
    assert env["PGDATABASE"]["value"] == "shorty_restore"
    # Only the restore's database changes: the backups still dump Shorty's.
    assert env_of(backup_pod(objects)["containers"][0])["PGDATABASE"]["value"] == "shorty"
    clean = render(None, sets=(*RESTORE, "backup.restore.clean=true"))
    args = named(clean, "Job", "demo-shorty-restore")["spec"]["template"]["spec"]["containers"][0]
    assert "--clean" in args["args"]


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("backup.enabled=true", "backup.restore.enabled=true"), "backup.restore.file"),
        (
            (
                *RESTORE,
                "backup.restore.database=scratch",
                "postgresql.enabled=false",
                "externalDatabase.host=db",
                "externalDatabase.existingSecret=db",
                "externalDatabase.existingSecretUrlKey=uri",
            ),
            "existingSecretUrlKey",
        ),
    ],
)
def test_a_restore_helm_cannot_do_fails_clearly(sets, message):
    args = ["template", "demo", str(CHART)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("kube", [OLDEST, NEWEST])
def test_the_restore_job_is_valid_for_kubernetes(kube):
    for obj in render(None, kube, sets=(*RESTORE, "backup.restore.clean=true")):
        if obj["kind"] in {"Job", "CronJob", "PersistentVolumeClaim", "NetworkPolicy"}:
            kubernetes_validate.validate(obj, kube, strict=True)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("backup.s3.bukket=mine", "additional properties 'bukket' not allowed"),
        ("backup.s3.bucket=My_Bucket", "backup/s3/bucket"),
        ("backup.s3.enabled=true", "backup/s3/bucket"),  # enabled needs a bucket
        ("backup.s3.endpoint=minio:9000", "backup/s3/endpoint"),  # a URL, with its scheme
        ("networkPolicy.backupS3.port=0", "minimum: got 0, want 1"),
        ("backup.keep=0", "minimum: got 0, want 1"),
        ("backup.keep=many", "got string, want integer"),
        ("backup.failedJobsHistoryLimit=0", "minimum: got 0, want 1"),
        ("backup.schedule=nightly", "backup/schedule"),
        ("backup.restore.file=../../etc/passwd", "backup/restore/file"),
        ("backup.persistence.sizee=1Gi", "additional properties 'sizee' not allowed"),
    ],
)
def test_the_values_schema_rejects_bad_backup_values(setting, message):
    result = helm("template", "demo", str(CHART), "--set", setting, check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert message in result.stderr


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of $(VAR) in an env value: variables defined before it;
    $$ is a literal $; an unknown reference stays as it is."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        value,
    )


def resolve(container: dict[str, Any], secrets: dict[tuple[str, str], str]) -> dict[str, str]:
    """The environment the kubelet gives the container (secretKeyRef from `secrets`)."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
    return env


def test_the_composed_database_url_is_what_libpq_needs():
    objects = render(PRODUCTION)
    data = named(objects, "Secret", "demo-shorty")["data"]
    secrets = {
        ("demo-shorty", key): base64.b64decode(value).decode() for key, value in data.items()
    }
    secrets |= {("shorty-backup-s3", key): "k" for key in S3_ENV if key.startswith("AWS_")}
    env = resolve(backup_pod(objects)["containers"][0], secrets)
    password = secrets[("demo-shorty", "postgres-password")]
    assert env["SHORTY_DATABASE_URL"] == (
        f"postgresql://shorty:{password}@demo-shorty-postgresql:5432/shorty"
    )


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with s3_server(tmp_path_factory.mktemp("moto") / "server.log") as url:
        yield url


@pytest.mark.parametrize("with_s3", [False, True], ids=["volume", "volume-and-s3"])
def test_the_cronjobs_own_command_backs_up_real_postgresql(clean, tmp_path, request, with_s3):
    """The CronJob's args and env as rendered, run with the image's ENTRYPOINT against
    the test PostgreSQL: the database comes whole from a Secret (existingSecretUrlKey,
    CloudNativePG's way), and the PG* parts point at the same server; with backup.s3,
    the archive also lands in a bucket of a real S3 endpoint (moto's server), with the
    keys from its Secret. Only /backups is moved to tmp_path."""
    s3_sets: tuple[str, ...] = ()
    secrets = {("test-db", "uri"): clean.database_url}
    if with_s3:
        endpoint = request.getfixturevalue("s3_endpoint")
        client = s3_client(endpoint)
        bucket = new_bucket(client)
        s3_sets = (
            "backup.s3.enabled=true",
            f"backup.s3.bucket={bucket}",
            "backup.s3.prefix=nightly",
            f"backup.s3.endpoint={endpoint}",
            "backup.s3.region=us-east-1",
            "backup.s3.existingSecret=test-s3",
        )
        secrets |= {
            ("test-s3", "AWS_ACCESS_KEY_ID"): ACCESS_KEY,
            ("test-s3", "AWS_SECRET_ACCESS_KEY"): SECRET_KEY,
        }
    url = urlsplit(clean.database_url)
    host = parse_qs(url.query).get("host", [url.hostname])[0]
    objects = render(
        None,
        sets=(
            "backup.enabled=true",
            "backup.keep=2",
            "postgresql.enabled=false",
            f"externalDatabase.host={host}",
            f"externalDatabase.port={url.port or 5432}",
            f"externalDatabase.database={url.path.lstrip('/')}",
            f"externalDatabase.user={url.username}",
            "externalDatabase.existingSecret=test-db",
            "externalDatabase.existingSecretUrlKey=uri",
            "externalRedis.url=redis://unused:6379/0",
            *s3_sets,
        ),
    )
    (container,) = backup_pod(objects)["containers"]
    mounted = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "backups")
    here = tmp_path / "backups"
    args = [
        str(here / Path(arg).relative_to(mounted)) if arg.startswith(f"{mounted}/") else arg
        for arg in [str(here) if arg == mounted else arg for arg in container["args"]]
    ]
    assert str(here) in args  # the volume is where the command writes
    command, *rest = [*entrypoint(), *args]
    env = resolve(container, secrets)
    result = subprocess.run(
        [str(Path(sys.executable).parent / command), *rest],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "AWS_EC2_METADATA_DISABLED": "true",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (made,) = backups_in(here)
    assert result.stdout.strip() == str(made.path)
    listing = subprocess.run(
        [str(find_tool("pg_restore").path), "--list", str(made.path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "TABLE public urls" in listing
    if with_s3:
        key = f"nightly/{made.path.name}"
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == made.path.read_bytes()
        assert f"Uploaded to s3://{bucket}/{key}" in result.stderr
        assert SECRET_KEY not in result.stderr + result.stdout


S3 = (
    "backup.enabled=true",
    "backup.s3.enabled=true",
    "backup.s3.bucket=shorty-backups",
    "backup.s3.prefix=/team/shorty/",
    "backup.s3.endpoint=https://minio.storage:9000",
    "backup.s3.existingSecret=minio-keys",
    "backup.s3.accessKeyIdKey=access",
    "backup.s3.secretAccessKeyKey=secret",
    "networkPolicy.backupS3.port=9000",
)


def test_the_bucket_reaches_the_backup_and_restore_as_env_and_a_policy():
    objects = render(None, sets=(*S3, *RESTORE, "backup.restore.fromS3=true"))
    backup = env_of(backup_pod(objects)["containers"][0])
    added = {name: backup[name] for name in backup if name not in DATABASE_ENV}
    assert {
        name: {k: v for k, v in item.items() if k != "name"} for name, item in added.items()
    } == {
        "SHORTY_BACKUP_S3_BUCKET": {"value": "shorty-backups"},
        "SHORTY_BACKUP_S3_PREFIX": {"value": "/team/shorty/"},
        "SHORTY_BACKUP_S3_ENDPOINT": {"value": "https://minio.storage:9000"},
        "AWS_ACCESS_KEY_ID": {
            "valueFrom": {"secretKeyRef": {"name": "minio-keys", "key": "access"}}
        },
        "AWS_SECRET_ACCESS_KEY": {
            "valueFrom": {"secretKeyRef": {"name": "minio-keys", "key": "secret"}}
        },
    }
    restore = named(objects, "Job", "demo-shorty-restore")["spec"]["template"]["spec"]
    (container,) = restore["containers"]
    # From the bucket, by the URI `shorty backup list` prints; downloaded into the volume.
    assert container["args"][:3] == [
        "backup",
        "restore",
        f"s3://shorty-backups/team/shorty/{ARCHIVE}",
    ]
    assert env_of(container) == {**backup, "TMPDIR": {"name": "TMPDIR", "value": "/backups"}}
    policy = named(objects, "NetworkPolicy", "demo-shorty-backup-s3")["spec"]
    assert policy["egress"][0]["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "backup"


def test_without_a_secret_no_keys_are_set_and_without_s3_nothing_of_it_is_rendered():
    keyless = render(None, sets=S3[:3])
    env = env_of(backup_pod(keyless)["containers"][0])
    assert "SHORTY_BACKUP_S3_BUCKET" in env
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SHORTY_BACKUP_S3_PREFIX"} & set(env)
    plain = render(None, sets=("backup.enabled=true",))
    assert not [name for name in env_of(backup_pod(plain)["containers"][0]) if "S3" in name]
    names = [p["metadata"]["name"] for p in of_kind(plain, "NetworkPolicy")]
    assert "demo-shorty-backup-s3" not in names
    failed = helm("template", "demo", str(CHART), *[
        arg for item in (*RESTORE, "backup.restore.fromS3=true") for arg in ("--set", item)
    ], check=False)  # fmt: skip
    assert failed.returncode != 0
    assert "backup.restore.fromS3 needs backup.s3.enabled" in failed.stderr
