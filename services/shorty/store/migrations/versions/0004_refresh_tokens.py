"""Refresh tokens: stored hashed, rotated on use, revoked by family.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from shorty.store.migrations.sql import run_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        """
        CREATE TABLE refresh_tokens (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            family      uuid NOT NULL,
            token_hash  text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            expires_at  timestamptz NOT NULL,
            used_at     timestamptz,
            revoked_at  timestamptz
        );
        CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
        CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
        """
    )


def downgrade() -> None:
    run_sql("DROP TABLE refresh_tokens;")
