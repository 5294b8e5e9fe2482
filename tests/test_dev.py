"""`shorty dev`'s pieces without starting the stack (tests/e2e/test_dev.py runs the whole
command): its choice of metrics ports, and its provisioning."""

import asyncio

import click
import pytest

from shorty.dev import bootstrap, metrics_ports, port_is_free
from shorty.settings import METRICS_PORTS, Settings
from shorty.store.users import UserStore
from tests.helpers import on_pool, scalar


def test_each_service_gets_a_metrics_port_of_its_own_and_free():
    taken = {METRICS_PORTS["api"]}  # as if --api-port were 9100
    ports = metrics_ports(Settings(), "127.0.0.1", taken)
    assert sorted(ports) == ["api", "redirect", "worker"]
    assert ports["api"] != METRICS_PORTS["api"]
    assert len({*ports.values(), METRICS_PORTS["api"]}) == 4
    assert all(port_is_free("127.0.0.1", port) for port in ports.values())


def test_no_metrics_ports_with_zero_and_no_shared_one():
    assert metrics_ports(Settings(metrics_port=0), "127.0.0.1", set()) == {
        "api": 0,
        "redirect": 0,
        "worker": 0,
    }
    with pytest.raises(click.ClickException, match="SHORTY_METRICS_PORT names one port"):
        metrics_ports(Settings(metrics_port=9200), "127.0.0.1", set())


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
