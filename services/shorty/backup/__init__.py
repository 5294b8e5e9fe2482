"""Backups of Shorty's database: ``pg_dump -Fc`` archives in a folder (a PVC in the
chart), kept by count, and restored with ``pg_restore`` (``shorty backup``).

``files`` names and prunes the archives, ``pgtools`` finds and runs the PostgreSQL
client tools without putting the password on their command line, ``jobs`` composes
them into a backup and a restore."""
