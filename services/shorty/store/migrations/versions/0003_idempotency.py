"""Idempotency keys: the first response to (user, route, key), kept 24 hours.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from shorty.store.migrations.sql import run_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        """
        CREATE TABLE idempotency_keys (
            user_id      bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            route        text NOT NULL,
            key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
            request_hash text NOT NULL,
            status       smallint,
            response     jsonb,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, route, key)
        );
        CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
        """
    )


def downgrade() -> None:
    run_sql("DROP TABLE idempotency_keys;")
