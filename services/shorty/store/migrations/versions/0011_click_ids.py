"""Clicks are known by their own id: ``clicks.stream_id`` becomes ``click_id``.

The redirect gives each click an id (``cid`` in the stream entry) that every copy
of it carries: the one a write that timed out left in Redis, its retry's, a
redelivery, a replay. Keyed by the stream entry ID, those copies were stored once
each. The key stays (``click_id``, ``occurred_at``): a unique key on a partitioned
table must hold the partition key, and every copy carries the click's time too,
so the copies meet in the same partition. Clicks stored before keep their entry
ID there, as do entries without a ``cid`` (written before this version) when
they are stored later: an entry ID holds a "-", a click id never does.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from shorty.store.migrations.sql import run_sql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE clicks RENAME COLUMN stream_id TO click_id;
COMMENT ON COLUMN clicks.click_id IS
    'the id the redirect gave the click (stream field cid), else its first stream entry ID';
"""

# A worker of before this version keys clicks by entry ID again: let the stream
# drain first, or a click redelivered after the downgrade is stored twice.
DOWNGRADE = """
COMMENT ON COLUMN clicks.click_id IS NULL;
ALTER TABLE clicks RENAME COLUMN click_id TO stream_id;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
