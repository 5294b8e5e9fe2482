"""PostgreSQL adapters: the pool, migrations and one repository per table."""
