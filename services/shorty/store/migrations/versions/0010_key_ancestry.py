"""API keys list every key above them (``ancestor_ids``: the parent's ancestors and
the parent), so revoking a key finds all below it in one indexed statement, and a
request made with a key spends from each ancestor's rate limit too: a minted key
never escapes the limits of the keys it came from.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from shorty.store.migrations.sql import run_sql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        """
        ALTER TABLE api_keys ADD COLUMN ancestor_ids bigint[] NOT NULL DEFAULT '{}';
        WITH RECURSIVE chain (id, ancestors) AS (
            SELECT id, '{}'::bigint[] FROM api_keys WHERE parent_id IS NULL
            UNION ALL
            SELECT k.id, chain.ancestors || k.parent_id
            FROM api_keys k JOIN chain ON k.parent_id = chain.id
        )
        UPDATE api_keys SET ancestor_ids = chain.ancestors FROM chain
        WHERE api_keys.id = chain.id AND cardinality(chain.ancestors) > 0;
        """
    )


def downgrade() -> None:
    run_sql("ALTER TABLE api_keys DROP COLUMN ancestor_ids;")
