"""Helpers the redirect tests share: a link written straight to the database, and the
lookup counter of each tier."""

from prometheus_client import REGISTRY

from tests.helpers import query


def add_link(url, code, target="https://example.com/landing", **columns):
    """Insert a link (``columns``: any other ``urls`` columns) as the API would leave it."""
    names = ", ".join(["code", "target", *columns])
    params = ", ".join(f"${i}" for i in range(1, len(columns) + 3))
    query(url, f"INSERT INTO urls ({names}) VALUES ({params})", code, target, *columns.values())


def lookups(tier, result):
    """How many lookups of ``tier`` ended in ``result``, so far in this process."""
    return (
        REGISTRY.get_sample_value("shorty_redirect_lookups_total", {"tier": tier, "result": result})
        or 0
    )
