"""Rollups out of the ingest transaction: which clicks are rolled up already.

The click ingester used to fold every batch into ``click_rollups`` and
``click_visitors`` itself, which made a click cost three to four times what
storing its raw row costs. Now it stores raw rows and counts only, and marks
every row with the ID of the transaction that stored it (``ingest_xact``,
with a BRIN index: rows arrive in that order, so the index stays tiny). The
rollup aggregator rolls up, in large batches, the clicks of every transaction
below a watermark, and moves the watermark in the same transaction:

- ``click_rollup_progress.done_before``: every click stored by a transaction
  with a lower ID is in the rollups; none above it is.

A transaction ID below the oldest one still running belongs to a transaction
that has ended, so the aggregator never passes a click that could still
commit. Clicks stored before this revision have no ``ingest_xact``: they were
rolled up when they were stored.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from shorty.store.migrations.sql import run_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE clicks ADD COLUMN ingest_xact bigint;
CREATE INDEX clicks_ingest_xact_idx ON clicks USING brin (ingest_xact) WITH (autosummarize = on);

CREATE TABLE click_rollup_progress (
    only_row    boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    done_before bigint NOT NULL
);
INSERT INTO click_rollup_progress (done_before)
VALUES (pg_snapshot_xmin(pg_current_snapshot())::text::bigint);
"""

DOWNGRADE = """
DROP TABLE click_rollup_progress;
DROP INDEX clicks_ingest_xact_idx;
ALTER TABLE clicks DROP COLUMN ingest_xact;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql(DOWNGRADE)
