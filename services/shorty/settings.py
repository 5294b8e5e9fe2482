"""Runtime settings, read once from ``SHORTY_*`` environment variables.

A bad value stops the process with one line per variable (never a traceback,
never the value itself: it may be a secret).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shorty.core.accounts import DEV_ADMIN_EMAIL, OPERATOR_EMAIL, normalize_email
from shorty.core.errors import DomainError
from shorty.core.hosts import canonical_host
from shorty.core.limits import Limit, parse_limit
from shorty.core.targets import Origin, TargetRules

ENV_PREFIX = "SHORTY_"
# Each service's metrics port while SHORTY_METRICS_PORT is unset: apart, so that all
# three can run on one machine (`shorty dev`).
METRICS_PORTS = {"api": 9100, "redirect": 9101, "worker": 9102}


# The HTTP servers `shorty serve api|redirect` runs the app under (SHORTY_SERVER, --server).
ServerName = Literal["uvicorn", "granian"]


class LiveTarget(BaseModel):
    """A service process the live view reads: its metrics, and its readiness."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")
    metrics: AnyHttpUrl
    health: AnyHttpUrl | None = None
    # Which figures mean something there; by default the name's first word
    # ("redirect-2" is a redirect).
    kind: Literal["api", "redirect", "worker"] | None = None

    @model_validator(mode="after")
    def _kind(self) -> LiveTarget:
        if self.kind is None:
            first = re.split(r"[ ._-]", self.name, maxsplit=1)[0].lower()
            if first not in ("api", "redirect", "worker"):
                raise ValueError(f"{self.name}: give its kind (api, redirect or worker)")
            self.kind = first  # type: ignore[assignment]
        return self


class SettingsError(Exception):
    """Raised with one human-readable line per bad variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Settings(BaseSettings):
    """Every knob Shorty reads from its environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL; unset means `shorty dev` starts an embedded server."
    )
    redis_url: SecretStr | None = Field(
        None, description="Redis URL (redis://, rediss:// or unix://); unset means embedded."
    )
    public_url: AnyHttpUrl = Field(
        AnyHttpUrl("http://localhost:8080"), description="Base of every short URL."
    )
    own_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra host names of Shorty (comma-separated); links to them are refused.",
    )
    blocked_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Domains (comma-separated) no link may point to, with their subdomains.",
    )
    allow_private_targets: bool = Field(
        False,
        description="Allow links to loopback, private and link-local addresses and names.",
    )
    allow_confusable_hosts: bool = Field(
        False, description="Allow links to host names that mix look-alike scripts (UTS 39)."
    )
    initial_api_key: SecretStr | None = Field(
        None,
        description="If set and no API key exists, an admin key with this value is made at start.",
    )
    initial_admin_email: str = Field(
        DEV_ADMIN_EMAIL,
        description="Owner of the key made from SHORTY_INITIAL_API_KEY; closed to registration.",
    )
    operator_api_key: SecretStr | None = Field(
        None,
        description="If set, the API makes sure at start that a key with this value exists"
        " with exactly urls:read and urls:write (the ShortLink operator's; a new value"
        " revokes the old one). The operator reads the same variable.",
    )
    operator_email: str = Field(
        OPERATOR_EMAIL,
        description="Owner of the key made from SHORTY_OPERATOR_API_KEY (a plain user);"
        " closed to registration.",
    )
    code_length: int = Field(7, ge=5, le=32, description="Length of generated short codes.")
    cache_ttl: int = Field(
        300, ge=0, le=86_400, description="Seconds a link's copy in Redis is fresh."
    )
    stale_ttl: int = Field(
        86_400,
        ge=0,
        le=30 * 86_400,
        description="Seconds a cached link (LRU, Redis) is kept past its freshness, to keep"
        " redirecting while PostgreSQL cannot be reached (serve stale on error; 0: off)."
        " An invalidated link is never served stale.",
    )
    db_pool_min: int = Field(1, ge=0, le=100, description="asyncpg pool: minimum connections.")
    db_pool_max: int = Field(10, ge=1, le=200, description="asyncpg pool: maximum connections.")
    db_timeout: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds before a PostgreSQL query, or a new connection's setup, is cancelled.",
    )
    db_acquire_timeout: float = Field(
        5.0,
        gt=0,
        le=120,
        description="Seconds a caller waits for a pooled PostgreSQL connection (then 503).",
    )
    db_breaker_threshold: int = Field(
        5,
        ge=1,
        le=1000,
        description="PostgreSQL calls unavailable in a row (driver errors, deadlines) that open"
        " the PostgreSQL breaker.",
    )
    db_breaker_cooldown: float = Field(
        2.0,
        ge=0,
        le=300,
        description="Seconds the PostgreSQL breaker stays open (calls refused at once: 503)"
        " before one call probes PostgreSQL (0: the breaker never opens).",
    )
    redis_timeout: float = Field(
        0.5, gt=0, le=30, description="Seconds before a Redis call gives up."
    )
    redis_max_connections: int = Field(
        100,
        ge=2,
        le=10_000,
        description="Connections each process may open to Redis; past them a call waits"
        " (at most SHORTY_REDIS_TIMEOUT) for one to be free.",
    )
    api_deadline: float = Field(
        5.0,
        ge=0.1,
        le=300,
        description="Seconds an API request may take (its budget): every wait in it ends by"
        " then, and past it the answer is 503 with Retry-After, within 0.1 s. Probes have"
        " their own (SHORTY_READY_TIMEOUT).",
    )
    redirect_deadline: float = Field(
        0.5,
        ge=0.05,
        le=60,
        description="Seconds a redirect past the process LRU may take (its budget): its"
        " Redis and PostgreSQL waits end by then; past it, a stale copy or 503 with"
        " Retry-After, within 0.1 s.",
    )
    redirect_redis_timeout: float = Field(
        0.1,
        gt=0,
        le=30,
        description="Seconds one Redis call of a redirect's link lookup (the cache tier) may"
        " take, within its budget; a slower one counts as a Redis failure and opens the"
        " Redis breaker, so lookups go to PostgreSQL instead of waiting on a slow Redis.",
    )
    drain_delay: float = Field(
        5.0,
        ge=0,
        le=10,
        description="Seconds an HTTP service keeps serving after SIGTERM, /readyz answering"
        " 503 meanwhile, before it stops accepting (0: stop at once; SIGINT or a second"
        " SIGTERM cuts it short).",
    )
    ready_timeout: float = Field(
        1.0, gt=0, le=30, description="Seconds each /readyz check waits for its dependency."
    )
    max_in_flight: int = Field(
        1000,
        ge=0,
        le=1_000_000,
        description="HTTP requests a process works on at once; past it, 503 with"
        " Retry-After at once (probes are never shed; 0: no bound).",
    )
    max_lookups_in_flight: int = Field(
        100,
        ge=0,
        le=1_000_000,
        description="Redirect lookups past the process LRU (to Redis, PostgreSQL) at once,"
        " at most half of SHORTY_MAX_IN_FLIGHT; past it they get 503 while LRU hits are"
        " served (0: none of its own).",
    )
    liveness_max_lag: float = Field(
        5.0,
        ge=0.5,
        le=300,
        description="Seconds the event loop may lag behind its heartbeat before /livez is 503.",
    )
    max_body_bytes: int = Field(
        65_536, ge=1024, le=10_485_760, description="Largest API request body."
    )
    lru_size: int = Field(
        100_000, ge=0, le=10_000_000, description="Links kept in each redirect process (0: off)."
    )
    lru_ttl: float = Field(
        60.0, gt=0, le=3600, description="Seconds a link in that memory is fresh."
    )
    permanent_max_age: int = Field(
        300,
        ge=0,
        le=31_536_000,
        description="Seconds browsers and CDNs may cache a 301/308 (a takedown waits this long).",
    )
    negative_ttl: float = Field(
        5.0, ge=0, le=3600, description="Seconds an unknown code is remembered as unknown."
    )
    click_buffer: int = Field(
        10_000, ge=100, le=10_000_000, description="Clicks held in memory while Redis is away."
    )
    click_batch: int = Field(500, ge=1, le=10_000, description="Clicks sent to Redis per write.")
    click_flush_interval: float = Field(
        0.25, gt=0, le=60, description="Seconds between click flushes."
    )
    redis_backoff: float = Field(
        2.0,
        ge=0,
        le=300,
        description="Seconds the Redis breaker stays open (Redis skipped, fallbacks taken)"
        " before one call probes Redis (0: Redis is never skipped).",
    )
    redis_breaker_threshold: int = Field(
        1,
        ge=1,
        le=1000,
        description="Redis calls failed in a row (errors or timeouts) that open the Redis breaker.",
    )
    chaos_enabled: bool = Field(
        False,
        description="Fault injection for experiments: admins may add latency, errors or an"
        " outage to PostgreSQL or Redis in every service process for a bounded time"
        " (/api/v1/admin/chaos, `shorty chaos`). Off: those routes answer 404 and nothing"
        " is ever injected. Never on in production unless you mean it.",
    )
    live_targets: Annotated[list[LiveTarget], NoDecode] = Field(
        default_factory=list,
        max_length=50,
        description="What the web app's live view reads every second (docs/ui.md): a JSON"
        ' list of {"name", "metrics", "health"?}, a service process\'s metrics URL and its'
        " /readyz. `shorty dev` sets it; empty: the live view says how to.",
    )
    redirect_rate: float = Field(
        0.0, ge=0, le=1_000_000, description="Redirects per second per client IP (0: no limit)."
    )
    redirect_burst: int = Field(20, ge=1, le=1_000_000, description="Burst above that rate.")
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed.",
    )
    ipv6_prefix: int = Field(
        64, ge=32, le=128, description="Per-IP limits count an IPv6 client by its /N network."
    )
    secret_key: SecretStr | None = Field(
        None, description="Salt of the visitor hash; the same on every replica. Random if unset."
    )
    ratelimit_algorithm: Literal["token_bucket", "sliding_window"] = Field(
        "token_bucket", description="How API limits are counted."
    )
    limit_per_key: str = Field("600/minute", description="API requests per API key ('off': none).")
    limit_per_user: str = Field("1200/minute", description="API requests per user, all keys.")
    limit_per_ip: str = Field("1200/minute", description="API requests per client IP.")
    api_replicas: int = Field(
        1, ge=1, le=1000, description="API replicas: each enforces 1/N of a limit without Redis."
    )
    jwt_secret: SecretStr | None = Field(
        None, description="Signs access tokens; the same on every API replica. Random if unset."
    )
    access_token_ttl: int = Field(900, ge=60, le=86_400, description="Access token lifetime (s).")
    refresh_token_ttl: int = Field(
        30 * 86_400, ge=3600, le=365 * 86_400, description="Refresh token lifetime (s)."
    )
    registration_open: bool = Field(True, description="Anyone may register an account.")
    max_keys_per_user: int = Field(
        50, ge=1, le=100_000, description="Live (unrevoked, unexpired) API keys a user may hold."
    )
    max_links_per_user: int | None = Field(
        None,
        ge=0,
        le=2_000_000_000,
        description="Links a user may own (unset: no limit); an admin may set a user's own.",
    )
    login_limit_per_ip: str = Field("20/minute", description="Login attempts per client IP.")
    login_limit_per_email: str = Field(
        "5/minute", description="Login attempts per account from one client IP."
    )
    login_limit_per_account: str = Field(
        "30/minute", description="Login attempts per account from everywhere together."
    )
    server: ServerName = Field(
        "uvicorn",
        description="The HTTP server of `shorty serve api|redirect` (--server): uvicorn,"
        " or granian (Rust; docs/performance.md).",
    )
    access_log: bool = Field(True, description="One JSON line per HTTP request.")
    access_log_sample: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of ordinary requests given an access line (1: all). Answers"
        " >= 400 and requests slower than SHORTY_ACCESS_LOG_SLOW always get one.",
    )
    access_log_slow: float = Field(
        0.1,
        gt=0,
        le=60,
        description="Seconds past which a request is slow: always logged, however sampled.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65_535,
        description="Port of a service's metrics, never its public port (0: not served;"
        " unset: each service its own, METRICS_PORTS).",
    )
    ingest_consumers: int = Field(
        2, ge=1, le=16, description="Click batches a worker stores at once."
    )
    max_deliveries: int = Field(
        5, ge=1, le=100, description="Tries of a stream entry before the dead-letter stream."
    )
    max_retrying: int = Field(
        5000,
        ge=1,
        le=1_000_000,
        description="Failed stream entries one consumer holds waiting for their retry; at"
        " that many it reads no new entries (they wait in the stream) until some are done.",
    )
    retry_base: float = Field(
        1.0, gt=0, le=3600, description="First retry delay of a failed entry (s); doubles."
    )
    retry_cap: float = Field(60.0, gt=0, le=86_400, description="Longest retry delay (s).")
    claim_idle: float = Field(
        60.0, ge=1, le=86_400, description="Seconds before a dead consumer's entries are taken."
    )
    outbox_poll_interval: float = Field(
        0.25, gt=0, le=60, description="Seconds between looks for unpublished link events."
    )
    outbox_retention_days: int = Field(
        7, ge=1, le=3650, description="Days published link events stay in the outbox table."
    )
    rollup_interval: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Seconds between rollups of new clicks: how far statistics lag behind.",
    )
    click_retention_days: int = Field(
        395, ge=0, le=36_500, description="Days raw clicks are kept (0: forever); rollups stay."
    )
    geoip_database: Path | None = Field(
        None, description="MaxMind-format country database (.mmdb); unset: countries unknown."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")

    @field_validator("live_targets", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else []
            except ValueError as exc:
                raise ValueError(f"not JSON: {exc}") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"postgres", "postgresql"}:
                raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in {"redis", "rediss", "unix"}:
                raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _salt_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it keys the visitor hash)")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (HS256 wants a key as long as its hash)")
        return value

    @field_validator("initial_api_key", "operator_api_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            raw = value.get_secret_value()
            if len(raw) < 16 or len(raw) > 200 or not raw.isprintable() or " " in raw:
                raise ValueError("must be 16 to 200 printable characters without spaces")
        return value

    @field_validator("public_url")
    @classmethod
    def _plain_base(cls, value: AnyHttpUrl) -> AnyHttpUrl:
        if value.query or value.fragment:
            raise ValueError("must not have a query or fragment (codes are appended to it)")
        return value

    @field_validator("own_hosts", "blocked_domains")
    @classmethod
    def _canonical_hosts(cls, value: list[str]) -> list[str]:
        try:
            return [canonical_host(host).key for host in value]
        except DomainError as exc:
            raise ValueError(exc.message) from None

    @field_validator(
        "limit_per_key",
        "limit_per_user",
        "limit_per_ip",
        "login_limit_per_ip",
        "login_limit_per_email",
        "login_limit_per_account",
    )
    @classmethod
    def _limit(cls, value: str) -> str:
        try:
            parse_limit(value)
        except DomainError as exc:
            raise ValueError(exc.message) from None
        return value

    @field_validator("initial_admin_email", "operator_email")
    @classmethod
    def _email(cls, value: str) -> str:
        try:
            return normalize_email(value)
        except DomainError as exc:
            raise ValueError(exc.message) from None

    @field_validator("own_hosts", "trusted_proxies", "blocked_domains", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().lower() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def public_base(self) -> str:
        """The public URL without a trailing slash, ready to have a code appended."""
        return str(self.public_url).rstrip("/")

    @property
    def own_origins(self) -> tuple[Origin, ...]:
        """Origins that are Shorty itself: a link to them would loop."""
        return _own_origins(self.public_url, tuple(self.own_hosts))

    @property
    def limits(self) -> dict[str, Limit | None]:
        """The API's default limits by what they are keyed on."""
        return {
            "key": parse_limit(self.limit_per_key),
            "user": parse_limit(self.limit_per_user),
            "ip": parse_limit(self.limit_per_ip),
            "login-ip": parse_limit(self.login_limit_per_ip),
            "login-email": parse_limit(self.login_limit_per_email),
            "login-account": parse_limit(self.login_limit_per_account),
        }

    @property
    def lookup_bound(self) -> int:
        """SHORTY_MAX_LOOKUPS_IN_FLIGHT, at most half of SHORTY_MAX_IN_FLIGHT: a smaller
        bound, so that lookups past the LRU are shed before LRU hits (0: none)."""
        lookups, requests = self.max_lookups_in_flight, self.max_in_flight
        if not lookups or not requests:
            return lookups
        return min(lookups, max(1, requests // 2))

    def metrics_port_of(self, service: str) -> int:
        """SHORTY_METRICS_PORT, else the service's own metrics port."""
        return METRICS_PORTS[service] if self.metrics_port is None else self.metrics_port

    @property
    def reserved_emails(self) -> frozenset[str]:
        """Addresses nobody may register: the start-up admin's, the operator's and
        `shorty dev`'s."""
        return frozenset({self.initial_admin_email, self.operator_email, DEV_ADMIN_EMAIL})

    @property
    def target_rules(self) -> TargetRules:
        """Where links may point: not Shorty itself, not a blocked domain, and (unless
        allowed) not a private address or a mixed-script host name."""
        return _target_rules(
            self.own_origins,
            frozenset(self.blocked_domains),
            self.allow_private_targets,
            self.allow_confusable_hosts,
        )

    def require_servers(self) -> tuple[str, str]:
        """Both server URLs, or a SettingsError naming what is missing."""
        missing = [
            f"{ENV_PREFIX}{name.upper()}: required here (or use `shorty dev` for embedded servers)"
            for name in ("database_url", "redis_url")
            if getattr(self, name) is None
        ]
        if missing:
            raise SettingsError(missing)
        assert self.database_url is not None
        assert self.redis_url is not None
        return self.database_url.get_secret_value(), self.redis_url.get_secret_value()


# Derived values, read on every request that needs them: built once per set of inputs
# (a cache keyed on the values, so a model_copy with other values gets its own).


@functools.lru_cache(maxsize=64)
def _own_origins(public_url: AnyHttpUrl, own_hosts: tuple[str, ...]) -> tuple[Origin, ...]:
    default_port = {"http": 80, "https": 443}[public_url.scheme]
    port = public_url.port if public_url.port != default_port else None
    return (Origin(public_url.host or "", port), *(Origin(host) for host in own_hosts))


@functools.lru_cache(maxsize=64)
def _target_rules(
    own: tuple[Origin, ...], blocked: frozenset[str], allow_private: bool, allow_confusable: bool
) -> TargetRules:
    return TargetRules(own, blocked, allow_private, allow_confusable)


def load_settings(**overrides: object) -> Settings:
    """Read the environment (plus explicit overrides) or raise SettingsError."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            name = ENV_PREFIX + "_".join(str(part) for part in error["loc"][:1]).upper()
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{name}: {message}")
        raise SettingsError(problems) from None
