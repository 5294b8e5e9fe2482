"""A per-user link quota: ``users.max_links`` (NULL: SHORTY_MAX_LINKS_PER_USER).

An admin sets it with ``PATCH /api/v1/admin/users/{id}``, above or below the
service's default. Only links the user owns count (``urls.owner_id``, counted
through ``urls_owner_created_idx``); links they let go of do not.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from shorty.store.migrations.sql import run_sql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql("ALTER TABLE users ADD COLUMN max_links integer CHECK (max_links >= 0);")


def downgrade() -> None:
    run_sql("ALTER TABLE users DROP COLUMN max_links;")
