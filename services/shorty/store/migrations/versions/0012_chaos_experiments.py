"""Fault-injection experiments (``chaos_experiments``): what is injected now, and
the history of what was.

Every service process polls the rows whose ``stopped_at`` is NULL and whose
``expires_at`` is ahead (``resilience/experiments.py``), so an experiment started
through one API replica reaches every process of the stack, and ends by itself
at ``expires_at`` even if nobody stops it. Rows are never deleted: they are the
history the admin API lists (and the web UI's chaos panel will show).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from shorty.store.migrations.sql import run_sql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE chaos_experiments (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dependency  text NOT NULL CHECK (dependency IN ('postgres', 'redis')),
    kind        text NOT NULL CHECK (kind IN ('latency', 'error', 'outage')),
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    stopped_at  timestamptz,
    created_by  bigint REFERENCES users (id) ON DELETE SET NULL,
    CHECK (expires_at > started_at)
);
-- The poll: experiments not stopped (few), then filtered on expires_at.
CREATE INDEX chaos_experiments_open_idx ON chaos_experiments (expires_at)
    WHERE stopped_at IS NULL;
"""


def upgrade() -> None:
    run_sql(UPGRADE)


def downgrade() -> None:
    run_sql("DROP TABLE chaos_experiments;")
