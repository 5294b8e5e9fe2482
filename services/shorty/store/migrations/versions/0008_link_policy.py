"""Links: admin blocks, query forwarding modes, permanent redirects without limits.

- ``blocked_reason`` / ``blocked_note`` / ``blocked_at``: an admin's takedown. A
  blocked link answers 410 (451 for ``legal``) whatever its owner does; only an
  admin clears it.
- ``forward_query`` becomes ``off`` / ``append`` / ``override``. ``true`` becomes
  ``append``: a visitor's parameter no longer replaces one the target has
  (``utm_*`` excepted), unless the link opts in with ``override``.
- A permanent redirect (301/308) is cached by browsers, so an expiry or a click
  limit could not be enforced: ``urls_permanent_unlimited`` refuses the pair, as
  the ShortLink CRD does. Existing links with both become their temporary
  twins (301 -> 302, 308 -> 307), which keeps their limits working.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from shorty.store.migrations.sql import run_sql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(
        """
        ALTER TABLE urls
            ADD COLUMN blocked_reason text CHECK (blocked_reason IN
                ('legal', 'abuse', 'malware', 'phishing', 'spam', 'other')),
            ADD COLUMN blocked_note text CHECK (length(blocked_note) <= 500),
            ADD COLUMN blocked_at timestamptz,
            ADD CONSTRAINT urls_blocked_whole
                CHECK ((blocked_reason IS NULL) = (blocked_at IS NULL)
                       AND (blocked_note IS NULL OR blocked_reason IS NOT NULL));
        ALTER TABLE urls ALTER COLUMN forward_query DROP DEFAULT;
        ALTER TABLE urls ALTER COLUMN forward_query TYPE text
            USING CASE WHEN forward_query THEN 'append' ELSE 'off' END;
        ALTER TABLE urls ALTER COLUMN forward_query SET DEFAULT 'off';
        ALTER TABLE urls ADD CONSTRAINT urls_forward_query_mode
            CHECK (forward_query IN ('off', 'append', 'override'));
        UPDATE urls SET redirect_type = CASE redirect_type WHEN 301 THEN 302 ELSE 307 END
        WHERE redirect_type IN (301, 308) AND (expires_at IS NOT NULL OR max_clicks IS NOT NULL);
        ALTER TABLE urls ADD CONSTRAINT urls_permanent_unlimited
            CHECK (redirect_type NOT IN (301, 308) OR (expires_at IS NULL AND max_clicks IS NULL));
        """
    )


def downgrade() -> None:
    run_sql(
        """
        ALTER TABLE urls DROP CONSTRAINT urls_permanent_unlimited;
        ALTER TABLE urls DROP CONSTRAINT urls_forward_query_mode;
        ALTER TABLE urls ALTER COLUMN forward_query DROP DEFAULT;
        ALTER TABLE urls ALTER COLUMN forward_query TYPE boolean USING forward_query <> 'off';
        ALTER TABLE urls ALTER COLUMN forward_query SET DEFAULT false;
        ALTER TABLE urls DROP CONSTRAINT urls_blocked_whole,
            DROP COLUMN blocked_at, DROP COLUMN blocked_note, DROP COLUMN blocked_reason;
        """
    )
