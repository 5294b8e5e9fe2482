"""Shared by the fault tests: where the test's servers listen, their settings, timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

from shorty.api.app import create_app as create_api
from shorty.redirect.app import create_app as create_redirect
from shorty.settings import Settings
from tests.conftest import PUBLIC_URL
from tests.faults import Proxy

T = TypeVar("T")

READY_TIMEOUT = 0.5  # each /readyz check's deadline in these tests
APPS = {"api": create_api, "redirect": create_redirect}


def settings_for(clean, *, database_url=None, redis_url=None, **extra) -> Settings:
    """The test's stores (or the URLs given, such as through a proxy), short Redis
    and readiness deadlines, and ``extra``."""
    return Settings(
        database_url=database_url or clean.database_url,
        redis_url=redis_url or clean.redis_url,
        public_url=PUBLIC_URL,
        redis_timeout=0.3,
        ready_timeout=READY_TIMEOUT,
        **extra,
    )


def postgres_socket(url: str) -> str:
    """The Unix socket a ``postgresql://...?host=/dir`` URL connects to."""
    parts = urlsplit(url)
    return f"{parse_qs(parts.query)['host'][0]}/.s.PGSQL.{parts.port or 5432}"


def redis_socket(url: str) -> str:
    """The Unix socket a ``unix:///path?db=N`` Redis URL connects to."""
    return url.removeprefix("unix://").partition("?")[0]


def through(proxy: Proxy, url: str) -> str:
    """``url`` (PostgreSQL or Redis on a Unix socket) reached through ``proxy`` instead."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # redis: unix:///path?db=N
        db = parse_qs(parts.query).get("db", ["0"])[0]
        return f"redis://127.0.0.1:{proxy.port}/{db}"
    auth = parts.netloc.rpartition("@")[0]
    return f"postgresql://{auth}@127.0.0.1:{proxy.port}{parts.path}?sslmode=disable"


def timed(call: Callable[[], T]) -> tuple[T, float]:
    """What ``call()`` returned, and the seconds it took."""
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started
