"""Per-key and per-user rate limits (NULL: the service's default).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from shorty.store.migrations.sql import run_sql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        """
        ALTER TABLE api_keys ADD COLUMN rate_limit text CHECK (length(rate_limit) <= 32);
        ALTER TABLE users ADD COLUMN rate_limit text CHECK (length(rate_limit) <= 32);
        """
    )


def downgrade() -> None:
    run_sql(
        """
        ALTER TABLE users DROP COLUMN rate_limit;
        ALTER TABLE api_keys DROP COLUMN rate_limit;
        """
    )
