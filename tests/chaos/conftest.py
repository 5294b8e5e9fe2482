"""A fault proxy (tests/faults.py) in front of the test's PostgreSQL or Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.helpers import postgres_socket, redis_socket
from tests.faults import Proxy


@pytest.fixture
def postgres_proxy(clean) -> Iterator[Proxy]:
    with Proxy(postgres_socket(clean.database_url)) as proxy:
        yield proxy


@pytest.fixture
def redis_proxy(clean) -> Iterator[Proxy]:
    with Proxy(redis_socket(clean.redis_url)) as proxy:
        yield proxy
