"""``shorty elk setup`` against a stand-in Elasticsearch and Kibana (tests/elk/standin.py;
neither can run here): the order and bodies of its calls, idempotence, waiting within
its bound, and the failures it must report in one line (and never with a password)."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shorty.cli import main
from shorty.elk.lifecycle import Lifecycle, time_value
from tests.elk.mappings import (
    ELK,
    component_templates,
    index_template,
    saved_objects,
    writer_role,
)
from tests.elk.standin import StandIn, serving
from tests.helpers import free_port

ELASTIC = "elastic-Pw-4821"
LOGSTASH = "logstash-Pw-7193"
KIBANA_SYSTEM = "kibana-Pw-5530"
PASSWORDS = {
    "SHORTY_ELK_PASSWORD": ELASTIC,
    "SHORTY_ELK_LOGSTASH_PASSWORD": LOGSTASH,
    "SHORTY_ELK_KIBANA_SYSTEM_PASSWORD": KIBANA_SYSTEM,
}

# Minimal valid stand-ins for the files of elk/ (tests must not depend on their content).
ILM_POLICY = {
    "policy": {
        "phases": {
            "hot": {"actions": {"rollover": {"max_age": "1d", "max_primary_shard_size": "10gb"}}},
            "warm": {"min_age": "7d", "actions": {"forcemerge": {"max_num_segments": 1}}},
            "delete": {"min_age": "99d", "actions": {"delete": {}}},
        }
    }
}
COMPONENT = {"template": {"mappings": {"properties": {"service.name": {"type": "keyword"}}}}}
INDEX_TEMPLATE = {
    "index_patterns": ["logs-shorty.*-*"],
    "data_stream": {},
    "priority": 200,
    "composed_of": ["shorty-logs-mappings"],
    "template": {"settings": {"index.lifecycle.name": "shorty-logs"}},
    "_meta": {"description": "Shorty's logs"},
}
ROLE = {
    "cluster": ["monitor"],
    "indices": [{"names": ["logs-shorty.*-*"], "privileges": ["create_doc", "auto_configure"]}],
}
VIEW = {"type": "index-pattern", "id": "shorty-api", "attributes": {"title": "logs-shorty.api-*"}}
SEARCH = {
    "type": "search",
    "id": "shorty-errors",
    "attributes": {"title": "Errors"},
    "references": [{"name": "index", "type": "index-pattern", "id": "shorty-api"}],
}


def write_config(folder: Path, objects: list[dict] | None = None) -> Path:
    """The flat folder the chart mounts (one ConfigMap of elasticsearch/* and kibana/*)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "ilm-policy.json": ILM_POLICY,
        "component-template-shorty-logs-mappings.json": COMPONENT,
        "index-template.json": INDEX_TEMPLATE,
        "logstash-writer-role.json": ROLE,
    }
    for name, body in files.items():
        (folder / name).write_text(json.dumps(body, indent=2))
    lines = [json.dumps(o) for o in (objects if objects is not None else [VIEW, SEARCH])]
    (folder / "saved-objects.ndjson").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def config(tmp_path):
    return write_config(tmp_path / "elk")


class Current:
    """The stand-in the module's one server answers as (a fresh one per test)."""

    standin = StandIn(ELASTIC)

    async def __call__(self, scope, receive, send):
        await self.standin(scope, receive, send)


@pytest.fixture(scope="module")
def server():
    current = Current()
    with serving(current) as base:
        yield current, base


@pytest.fixture
def standin(server):
    server[0].standin = StandIn(ELASTIC)
    return server[0].standin


@pytest.fixture
def url(server):
    return server[1]


def setup(url: str, config: Path, *args: str, env: dict | None = None):
    """Run ``shorty elk setup --part all`` in this process; the click Result."""
    options = ["--elasticsearch-url", url, "--kibana-url", f"{url}/kibana", "--timeout", "5"]
    return CliRunner().invoke(
        main,
        ["elk", "setup", "--config-dir", str(config), *options, *args],
        env={**PASSWORDS, **(env or {})},
        catch_exceptions=False,
    )


def test_loads_everything_in_order_with_the_retention_substituted(standin, url, config):
    result = setup(url, config, "--retention", "30d", "--warm-after", "36h")
    assert result.exit_code == 0, result.output
    assert standin.calls() == [
        "GET /_cluster/health",
        "PUT /_ilm/policy/shorty-logs",
        "PUT /_component_template/shorty-logs-mappings",
        "GET /_index_template/shorty-logs",
        "PUT /_index_template/shorty-logs",  # new: without its digest...
        "GET /_data_stream/logs-shorty.*-*",  # ...the streams rolled over...
        "PUT /_index_template/shorty-logs",  # ...then the digest recorded
        "PUT /_security/role/shorty_logstash_writer",
        "PUT /_security/user/shorty_logstash",
        "POST /_security/user/kibana_system/_password",
        "GET /kibana/api/status",
        "POST /kibana/api/saved_objects/_import?overwrite=true",
    ]
    assert {user for _, _, user, _ in standin.requests} == {"elastic"}  # basic auth, always

    phases = standin.config["ilm/shorty-logs"]["policy"]["phases"]
    assert phases["delete"] == {"min_age": "30d", "actions": {"delete": {}}}
    assert phases["warm"] == {"min_age": "36h", "actions": {"forcemerge": {"max_num_segments": 1}}}
    assert phases["hot"] == ILM_POLICY["policy"]["phases"]["hot"]
    assert standin.config["component/shorty-logs-mappings"] == COMPONENT
    template = standin.config["index/shorty-logs"]
    meta = template.pop("_meta")
    assert template == {k: v for k, v in INDEX_TEMPLATE.items() if k != "_meta"}
    assert meta["description"] == "Shorty's logs"
    assert set(meta) == {"description", "shorty_templates_digest"}
    assert standin.roles == {"shorty_logstash_writer": ROLE}
    assert standin.users["shorty_logstash"]["roles"] == ["shorty_logstash_writer"]
    assert standin.passwords["shorty_logstash"] == LOGSTASH
    assert standin.passwords["kibana_system"] == KIBANA_SYSTEM
    assert set(standin.saved_objects) == {
        ("index-pattern", "shorty-api"),
        ("search", "shorty-errors"),
    }
    assert "2 saved objects imported" in result.stdout
    assert result.stderr == ""


def test_a_second_run_leaves_the_same_state_and_rolls_over_only_after_a_template_change(
    standin, url, config
):
    standin.data_streams = ["logs-shorty.api-default", "logs-shorty.worker-default", "logs-other"]
    assert setup(url, config).exit_code == 0
    first = standin.state()
    # The templates were new to the cluster: existing streams take them at their next write.
    rolled = ["logs-shorty.api-default?lazy=true", "logs-shorty.worker-default?lazy=true"]
    assert standin.rollovers == rolled

    again = setup(url, config)
    assert again.exit_code == 0, again.output
    assert standin.state() == first
    assert standin.rollovers == rolled  # nothing changed: no new backing indices

    changed = {"template": {"mappings": {"properties": {"event.duration": {"type": "long"}}}}}
    (config / "component-template-shorty-logs-mappings.json").write_text(json.dumps(changed))
    assert setup(url, config).exit_code == 0
    assert standin.config["component/shorty-logs-mappings"] == changed
    assert standin.rollovers == rolled * 2


def test_a_run_cut_short_before_the_rollover_rolls_over_next_time(standin, url, config):
    standin.data_streams = ["logs-shorty.api-default"]
    standin.refuse_rollovers = 1
    assert setup(url, config).exit_code == 1  # the template is in, the rollover failed
    assert standin.rollovers == []
    assert setup(url, config).exit_code == 0
    assert standin.rollovers == ["logs-shorty.api-default?lazy=true"]


def test_waits_for_servers_that_answer_503_then_200(standin, url, config):
    standin.es_unavailable, standin.kibana_unavailable = 2, 1
    result = setup(url, config)
    assert result.exit_code == 0, result.output
    assert standin.calls().count("GET /_cluster/health") == 3
    assert standin.calls().count("GET /kibana/api/status") == 2
    waiting = [line for line in result.stdout.splitlines() if "next try in" in line]
    assert len(waiting) == 3
    assert waiting[0].startswith(
        f"Elasticsearch at {url}: waiting for cluster status yellow or green: "
        "HTTP 503 (master_not_discovered_exception: no master yet); next try in"
    )
    assert "Kibana is unavailable" in waiting[2]


def test_an_unreachable_server_fails_within_the_bound_naming_its_url(config):
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        [
            "elk",
            "setup",
            "--part",
            "elasticsearch",
            "--config-dir",
            str(config),
            "--elasticsearch-url",
            url,
            "--timeout",
            "1",
        ],
        env=PASSWORDS,
    )
    assert time.monotonic() - started < 2.5
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: Elasticsearch at {url}: waiting for cluster status yellow or green: "
        "gave up after 1 s: connection refused\n"
    )


def test_a_refused_login_fails_at_once(standin, url, config):
    started = time.monotonic()
    result = setup(url, config, env={"SHORTY_ELK_PASSWORD": "wrong"})
    assert time.monotonic() - started < 1
    assert result.exit_code == 1
    assert standin.calls() == ["GET /_cluster/health"]
    assert result.stderr == (
        f"Error: Elasticsearch at {url}: waiting for cluster status yellow or green: HTTP 401 "
        "for user 'elastic' (security_exception: unable to authenticate user [elastic] for "
        "REST request [/_cluster/health]): check the user and SHORTY_ELK_PASSWORD\n"
    )


def test_a_refused_body_stops_with_elasticsearchs_reason(standin, url, config):
    template = {**INDEX_TEMPLATE, "composed_of": ["shorty-logs-mappings", "shorty-nope"]}
    (config / "index-template.json").write_text(json.dumps(template))
    result = setup(url, config)
    assert result.exit_code == 1
    assert standin.calls().count("PUT /_index_template/shorty-logs") == 1  # not tried again
    assert "PUT /_security/role/shorty_logstash_writer" not in standin.calls()
    assert result.stderr == (
        f"Error: Elasticsearch at {url}: PUT _index_template/shorty-logs: HTTP 400: "
        "invalid_index_template_exception: index_template [shorty-logs] invalid, cause [index "
        "template [shorty-logs] specifies component templates ['shorty-nope'] that do not exist]\n"
    )


def test_kibanas_import_errors_are_listed(standin, url, tmp_path):
    dangling = {**SEARCH, "id": "slow", "references": [{"type": "index-pattern", "id": "gone"}]}
    config = write_config(tmp_path / "elk", [VIEW, SEARCH, dangling])
    result = setup(url, config)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Kibana imported 2 of 3 saved objects from saved-objects.ndjson; "
        "search slow ('Errors'): missing_references: index-pattern gone\n"
    )
    assert standin.passwords["shorty_logstash"] == LOGSTASH  # the Elasticsearch part was done


def test_a_missing_file_is_named_before_any_request(standin, url, config):
    (config / "logstash-writer-role.json").unlink()
    result = setup(url, config)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {config / 'logstash-writer-role.json'}: no such file\n"
    assert standin.requests == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SHORTY_ELK_RETENTION": "2w"},
            "Invalid value for '--retention' (env var: 'SHORTY_ELK_RETENTION'): '2w' is not",
        ),
        ({"SHORTY_ELK_WARM_AFTER": "14d"}, "the warm phase (14d) must start before the retention"),
        ({"SHORTY_ELK_LOGSTASH_PASSWORD": None}, "SHORTY_ELK_LOGSTASH_PASSWORD is not set"),
        ({"SHORTY_ELK_ELASTICSEARCH_URL": "elasticsearch:9200"}, "is not an http:// or https://"),
    ],
)
def test_bad_settings_are_usage_errors(env, message, config):
    args = ["elk", "setup", "--config-dir", str(config), "--kibana-url", "http://kibana:5601"]
    env = {"SHORTY_ELK_ELASTICSEARCH_URL": "http://es:9200", **PASSWORDS, **env}
    result = CliRunner().invoke(main, args, env=env)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("text", ["14", "1.5d", "2w", "14 d", "-1d", ""])
def test_time_values_elasticsearch_would_not_read_are_refused(text):
    with pytest.raises(ValueError, match="is not a time value"):
        time_value(text)


def test_time_values_compare_across_units():
    assert time_value("48h").nanos == time_value("2d").nanos
    assert time_value("1500ms").nanos > time_value("1s").nanos
    with pytest.raises(ValueError, match="must start before"):
        Lifecycle(retention=time_value("2d"), warm_after=time_value("48h"))


def tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1: (ca.crt, tls.crt, tls.key)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, key, issuer, issuer_key, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
            builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("shorty test CA", ca_key, "shorty test CA", ca_key, ca=True)
    cert = certificate("127.0.0.1", key, "shorty test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.crt", folder / "tls.crt", folder / "tls.key"
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def test_tls_with_the_given_ca_and_a_clear_failure_without_it(tmp_path, config):
    ca, cert, key = tls_files(tmp_path)
    standin = StandIn(ELASTIC)
    with serving(standin, (cert, key)) as url:
        untrusted = setup(url, config, "--part", "elasticsearch")
        assert untrusted.exit_code == 1
        assert untrusted.stderr.startswith(
            f"Error: Elasticsearch at {url}: TLS failed (--ca-file?): "
            "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
        )
        assert standin.requests == []
        trusted = setup(url, config, "--ca-file", str(ca))
    assert trusted.exit_code == 0, trusted.output
    assert standin.passwords["kibana_system"] == KIBANA_SYSTEM


def test_no_password_is_ever_printed(standin, url, config):
    """The real command in its own process (every byte it writes is seen), through a
    success, a refused body that carried a password, and a refused login."""
    short = "Zq9x!"  # refused by Elasticsearch: fewer than 6 characters
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("SHORTY_")}
    command = [sys.executable, "-m", "shorty", "elk", "setup", "--config-dir", str(config)]
    command += ["--elasticsearch-url", url, "--kibana-url", f"{url}/kibana", "--timeout", "5"]
    runs = [
        PASSWORDS,
        {**PASSWORDS, "SHORTY_ELK_LOGSTASH_PASSWORD": short},
        {**PASSWORDS, "SHORTY_ELK_PASSWORD": f"{ELASTIC}-not"},
    ]
    outputs = [
        subprocess.run(
            command,
            env={**clean_env, **run},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        for run in runs
    ]
    assert [done.returncode for done in outputs] == [0, 1, 1]
    assert "passwords must be at least [6] characters long" in outputs[1].stderr
    assert "HTTP 401" in outputs[2].stderr
    sent = b"".join(body for _, _, _, body in standin.requests)
    for password in (LOGSTASH, KIBANA_SYSTEM, short):
        assert password.encode() in sent  # they were used...
    for done in outputs:
        for password in (ELASTIC, LOGSTASH, KIBANA_SYSTEM, short):
            assert password not in done.stdout + done.stderr  # ...and never shown


def test_the_repositorys_elk_folder_loads(standin, url):
    """The real files, in the repository's layout (elasticsearch/ and kibana/)."""
    result = setup(url, ELK)
    assert result.exit_code == 0, result.output
    template = standin.config["index/shorty-logs"]
    template.pop("_meta")
    expected = index_template()
    expected.pop("_meta", None)
    assert template == expected
    components = component_templates()
    assert components
    for name, body in components.items():
        assert standin.config[f"component/{name}"] == body
    assert standin.roles["shorty_logstash_writer"] == writer_role()
    phases = standin.config["ilm/shorty-logs"]["policy"]["phases"]
    assert (phases["warm"]["min_age"], phases["delete"]["min_age"]) == ("2d", "14d")
    ids = {(o["type"], o["id"]) for o in saved_objects()}
    assert set(standin.saved_objects) == ids
