import pytest
from click.testing import CliRunner

from shorty.cli import main
from shorty.core.targets import Origin
from shorty.settings import Settings, SettingsError, load_settings


def test_defaults():
    settings = load_settings()
    assert settings.database_url is None
    assert settings.code_length == 7
    assert settings.public_base == "http://localhost:8080"
    assert settings.own_origins == (Origin("localhost", 8080),)


def test_values_come_from_shorty_variables(monkeypatch):
    monkeypatch.setenv("SHORTY_DATABASE_URL", "postgresql://u:hunter2@db/shorty")
    monkeypatch.setenv("SHORTY_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("SHORTY_PUBLIC_URL", "https://sho.rt/")
    monkeypatch.setenv("SHORTY_OWN_HOSTS", "API.sho.rt, admin.sho.rt")
    monkeypatch.setenv("SHORTY_CODE_LENGTH", "9")
    monkeypatch.setenv("SHORTY_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.require_servers() == (
        "postgresql://u:hunter2@db/shorty",
        "redis://cache:6379/0",
    )
    assert settings.public_base == "https://sho.rt"
    assert settings.own_origins == (
        Origin("sho.rt", None),
        Origin("api.sho.rt", None),
        Origin("admin.sho.rt", None),
    )
    assert settings.code_length == 9
    assert settings.log_level == "DEBUG"
    assert "hunter2" not in repr(settings)


def test_redirect_settings(monkeypatch):
    defaults = load_settings()
    assert defaults.redirect_rate == 0  # no per-IP limit unless asked for
    assert defaults.trusted_proxies == []
    monkeypatch.setenv("SHORTY_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8")
    monkeypatch.setenv("SHORTY_REDIRECT_RATE", "50")
    monkeypatch.setenv("SHORTY_LRU_SIZE", "0")
    settings = load_settings()
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "fd00::/8"]
    assert settings.redirect_rate == 50
    assert settings.lru_size == 0
    monkeypatch.setenv("SHORTY_TRUSTED_PROXIES", "10.0.0.0/33")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems[0].startswith("SHORTY_TRUSTED_PROXIES: ")


@pytest.mark.parametrize("bad", ["31", "129", "64.5", "/64"])
def test_the_ipv6_prefix_is_32_to_128(monkeypatch, bad):
    assert load_settings().ipv6_prefix == 64
    monkeypatch.setenv("SHORTY_IPV6_PREFIX", "56")
    assert load_settings().ipv6_prefix == 56
    monkeypatch.setenv("SHORTY_IPV6_PREFIX", bad)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [p.split(":")[0] for p in caught.value.problems] == ["SHORTY_IPV6_PREFIX"]


def test_the_link_quota_is_unlimited_unless_set(monkeypatch):
    assert load_settings().max_links_per_user is None
    monkeypatch.setenv("SHORTY_MAX_LINKS_PER_USER", "500")
    assert load_settings().max_links_per_user == 500
    monkeypatch.setenv("SHORTY_MAX_LINKS_PER_USER", "-1")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [p.split(":")[0] for p in caught.value.problems] == ["SHORTY_MAX_LINKS_PER_USER"]


def test_every_bad_value_is_named_once(monkeypatch):
    monkeypatch.setenv("SHORTY_CODE_LENGTH", "three")
    monkeypatch.setenv("SHORTY_PUBLIC_URL", "not a url")
    monkeypatch.setenv("SHORTY_DATABASE_URL", "mysql://root:hunter2@db/x")
    monkeypatch.setenv("SHORTY_REDIS_URL", "http://cache")
    monkeypatch.setenv("SHORTY_INITIAL_API_KEY", "short")
    monkeypatch.setenv("SHORTY_LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    problems = caught.value.problems
    names = sorted(line.split(":", 1)[0] for line in problems)
    assert names == [
        "SHORTY_CODE_LENGTH",
        "SHORTY_DATABASE_URL",
        "SHORTY_INITIAL_API_KEY",
        "SHORTY_LOG_LEVEL",
        "SHORTY_PUBLIC_URL",
        "SHORTY_REDIS_URL",
    ]
    assert "SHORTY_DATABASE_URL: must be a postgresql:// URL" in problems
    assert not any("hunter2" in line for line in problems)


def test_missing_servers_are_named():
    with pytest.raises(SettingsError) as caught:
        Settings().require_servers()
    assert [line.split(":")[0] for line in caught.value.problems] == [
        "SHORTY_DATABASE_URL",
        "SHORTY_REDIS_URL",
    ]


def test_cli_reports_bad_settings_without_traceback(monkeypatch):
    monkeypatch.setenv("SHORTY_CODE_LENGTH", "99")
    result = CliRunner().invoke(main, ["serve", "api"])
    assert result.exit_code == 2
    assert "invalid settings:" in result.output
    assert "SHORTY_CODE_LENGTH: Input should be less than or equal to 32" in result.output
    assert "Traceback" not in result.output


def test_serve_without_servers_says_what_is_missing():
    result = CliRunner().invoke(main, ["serve", "redirect"])
    assert result.exit_code == 2
    assert "SHORTY_DATABASE_URL: required here" in result.output


def test_hosts_and_emails_are_normalized(monkeypatch):
    monkeypatch.setenv("SHORTY_PUBLIC_URL", "http://[::1]:8080")
    monkeypatch.setenv("SHORTY_OWN_HOSTS", "Bücher.de, API.sho.rt.")
    monkeypatch.setenv("SHORTY_INITIAL_ADMIN_EMAIL", " Root@Example.COM ")
    settings = load_settings()
    assert settings.own_origins == (
        Origin("::1", 8080),
        Origin("xn--bcher-kva.de"),
        Origin("api.sho.rt"),
    )
    assert settings.initial_admin_email == "root@example.com"


def test_each_service_has_its_own_metrics_port_unless_one_is_set(monkeypatch):
    services = ("api", "redirect", "worker")
    assert [load_settings().metrics_port_of(s) for s in services] == [9100, 9101, 9102]
    monkeypatch.setenv("SHORTY_METRICS_PORT", "9200")
    assert [load_settings().metrics_port_of(s) for s in services] == [9200] * 3
    monkeypatch.setenv("SHORTY_METRICS_PORT", "0")  # none
    assert [load_settings().metrics_port_of(s) for s in services] == [0] * 3


@pytest.mark.parametrize(
    ("requests", "lookups", "bound"),
    [
        ("1000", "100", 100),  # the defaults
        ("100", "100", 50),  # at most half the requests: LRU hits keep room
        ("1", "100", 1),
        ("0", "100", 100),  # no bound on requests: the lookups' own
        ("1000", "0", 0),  # none of its own
    ],
)
def test_the_lookup_bound_is_smaller_than_the_request_bound(monkeypatch, requests, lookups, bound):
    monkeypatch.setenv("SHORTY_MAX_IN_FLIGHT", requests)
    monkeypatch.setenv("SHORTY_MAX_LOOKUPS_IN_FLIGHT", lookups)
    assert load_settings().lookup_bound == bound


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SHORTY_PUBLIC_URL", "https://sho.rt/?x=1", "must not have a query or fragment"),
        ("SHORTY_PUBLIC_URL", "https://sho.rt/#top", "must not have a query or fragment"),
        ("SHORTY_INITIAL_ADMIN_EMAIL", "not-an-email", "is not an email address"),
        ("SHORTY_OWN_HOSTS", "ok.example, -bad-.example", "not a valid host name"),
        ("SHORTY_SECRET_KEY", "", "at least 16 characters"),
        ("SHORTY_JWT_SECRET", "short", "at least 32 bytes"),
        ("SHORTY_METRICS_PORT", "65536", "less than or equal to 65535"),
        ("SHORTY_DRAIN_DELAY", "-1", "greater than or equal to 0"),
        ("SHORTY_DRAIN_DELAY", "11", "less than or equal to 10"),
        ("SHORTY_READY_TIMEOUT", "0", "greater than 0"),
        ("SHORTY_READY_TIMEOUT", "31", "less than or equal to 30"),
        ("SHORTY_DB_TIMEOUT", "0", "greater than 0"),
        ("SHORTY_DB_ACQUIRE_TIMEOUT", "0", "greater than 0"),
        ("SHORTY_DB_ACQUIRE_TIMEOUT", "121", "less than or equal to 120"),
        ("SHORTY_DB_BREAKER_THRESHOLD", "0", "greater than or equal to 1"),
        ("SHORTY_DB_BREAKER_THRESHOLD", "1001", "less than or equal to 1000"),
        ("SHORTY_DB_BREAKER_COOLDOWN", "-1", "greater than or equal to 0"),
        ("SHORTY_DB_BREAKER_COOLDOWN", "301", "less than or equal to 300"),
        ("SHORTY_REDIS_BREAKER_THRESHOLD", "0", "greater than or equal to 1"),
        ("SHORTY_REDIS_BREAKER_THRESHOLD", "x", "valid integer"),
        ("SHORTY_REDIS_BACKOFF", "-0.5", "greater than or equal to 0"),
        ("SHORTY_MAX_IN_FLIGHT", "-1", "greater than or equal to 0"),
        ("SHORTY_MAX_IN_FLIGHT", "1000001", "less than or equal to 1000000"),
        ("SHORTY_MAX_LOOKUPS_IN_FLIGHT", "-1", "greater than or equal to 0"),
        ("SHORTY_API_DEADLINE", "0.05", "greater than or equal to 0.1"),
        ("SHORTY_API_DEADLINE", "301", "less than or equal to 300"),
        ("SHORTY_REDIRECT_DEADLINE", "0", "greater than or equal to 0.05"),
        ("SHORTY_REDIRECT_REDIS_TIMEOUT", "0", "greater than 0"),
        ("SHORTY_LIVENESS_MAX_LAG", "0.1", "greater than or equal to 0.5"),
        ("SHORTY_LIVENESS_MAX_LAG", "301", "less than or equal to 300"),
    ],
)
def test_more_bad_values(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems[0].startswith(f"{name}: ")
    assert message in caught.value.problems[0]


@pytest.mark.parametrize("bad", ["1", "0", "10001", "lots"])
def test_the_redis_pool_size_is_bounded(monkeypatch, bad):
    assert load_settings().redis_max_connections == 100
    monkeypatch.setenv("SHORTY_REDIS_MAX_CONNECTIONS", "20")
    assert load_settings().redis_max_connections == 20
    monkeypatch.setenv("SHORTY_REDIS_MAX_CONNECTIONS", bad)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [p.split(":")[0] for p in caught.value.problems] == ["SHORTY_REDIS_MAX_CONNECTIONS"]


@pytest.mark.parametrize("bad", ["-1", "2592001", "a day"])
def test_serving_stale_lasts_a_day_unless_set(monkeypatch, bad):
    assert load_settings().stale_ttl == 86_400
    monkeypatch.setenv("SHORTY_STALE_TTL", "0")
    assert load_settings().stale_ttl == 0  # off
    monkeypatch.setenv("SHORTY_STALE_TTL", bad)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert [p.split(":")[0] for p in caught.value.problems] == ["SHORTY_STALE_TTL"]


def test_breaker_settings(monkeypatch):
    defaults = load_settings()
    assert (defaults.db_breaker_threshold, defaults.db_breaker_cooldown) == (5, 2.0)
    assert (defaults.redis_breaker_threshold, defaults.redis_backoff) == (1, 2.0)
    monkeypatch.setenv("SHORTY_DB_BREAKER_THRESHOLD", "3")
    monkeypatch.setenv("SHORTY_DB_BREAKER_COOLDOWN", "0")
    monkeypatch.setenv("SHORTY_REDIS_BREAKER_THRESHOLD", "4")
    monkeypatch.setenv("SHORTY_REDIS_BACKOFF", "7.5")
    settings = load_settings()
    assert (settings.db_breaker_threshold, settings.db_breaker_cooldown) == (3, 0.0)
    assert (settings.redis_breaker_threshold, settings.redis_backoff) == (4, 7.5)


def test_deadlines(monkeypatch):
    defaults = load_settings()
    # A redirect's Redis call is capped well under its budget, which a 300 ms slow
    # Redis round trip exceeds (docs/resilience.md, "Deadlines").
    assert (defaults.redirect_deadline, defaults.redirect_redis_timeout) == (0.5, 0.1)
    assert defaults.api_deadline == defaults.db_timeout == 5.0
    monkeypatch.setenv("SHORTY_API_DEADLINE", "12.5")
    monkeypatch.setenv("SHORTY_REDIRECT_DEADLINE", "0.25")
    settings = load_settings()
    assert (settings.api_deadline, settings.redirect_deadline) == (12.5, 0.25)
