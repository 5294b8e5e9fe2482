"""API keys know which key minted them; ``keys:write`` guards minting; no user's key
holds a scope its owner's role does not grant.

- ``api_keys.parent_id``: the key that minted this one through the API (NULL for a
  key made by a login session, the CLI or at start). Revoking a key revokes the
  keys it minted, and theirs.
- Keys holding ``admin`` get ``keys:write`` (they could mint keys before it
  existed); other keys made before this revision cannot mint keys any more: log
  in, or mint a key with ``keys:write`` from the CLI.
- ``admin`` is taken from the keys of users who are not admins (a demotion used
  to leave it there).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from shorty.store.migrations.sql import run_sql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        """
        ALTER TABLE api_keys ADD COLUMN parent_id bigint REFERENCES api_keys (id) ON DELETE CASCADE;
        CREATE INDEX api_keys_parent_id_idx ON api_keys (parent_id) WHERE parent_id IS NOT NULL;
        UPDATE api_keys SET scopes = array_append(scopes, 'keys:write')
        WHERE 'admin' = ANY (scopes) AND NOT 'keys:write' = ANY (scopes);
        UPDATE api_keys k SET scopes = array_remove(k.scopes, 'admin')
        FROM users u WHERE u.id = k.user_id AND u.role <> 'admin' AND 'admin' = ANY (k.scopes);
        """
    )


def downgrade() -> None:
    run_sql(
        """
        UPDATE api_keys SET scopes = array_remove(scopes, 'keys:write');
        ALTER TABLE api_keys DROP COLUMN parent_id;
        """
    )
