"""Fixtures of the redirect tests."""

import pytest
import redis


@pytest.fixture
def cache(clean):
    """A Redis client on the test database (the links' cache, the clicks stream)."""
    client = redis.Redis.from_url(clean.redis_url)
    yield client
    client.close()
