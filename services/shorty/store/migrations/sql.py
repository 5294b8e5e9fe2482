"""Run a plain-SQL script inside the migration's transaction.

SQLAlchemy's asyncpg adapter prepares every statement, and a prepared
statement holds one command; asyncpg's own ``execute`` without arguments uses
the simple query protocol, which takes a whole script (``$$`` bodies too).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.util import await_only


def run_sql(script: str) -> None:
    driver = op.get_bind().connection.driver_connection
    assert driver is not None
    await_only(driver.execute(script))
