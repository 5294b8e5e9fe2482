"""`shorty dev`'s provisioning, without starting the stack (tests/e2e/test_dev.py runs it)."""

import asyncio

import click
import pytest

from shorty.dev import bootstrap
from shorty.settings import Settings
from shorty.store.users import UserStore
from tests.helpers import scalar
from tests.store.test_keys import on_pool


def test_dev_gives_no_admin_key_to_an_account_someone_else_registered(clean, tmp_path):
    """Issue #12 item 4: admin@shorty.localhost registered before the first `shorty dev`."""
    on_pool(
        clean.database_url,
        lambda pool: UserStore(pool).create("admin@shorty.localhost", "the attacker's pw"),
    )
    settings = Settings(database_url=clean.database_url, redis_url=clean.redis_url)
    with pytest.raises(click.ClickException, match="is not an admin"):
        asyncio.run(bootstrap(settings, clean.database_url, tmp_path / "credentials.json"))
    assert scalar(clean.database_url, "SELECT count(*) FROM api_keys") == 0
