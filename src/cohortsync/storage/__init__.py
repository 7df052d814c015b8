"""State storage: SQLAlchemy tables, engines and Alembic migrations (SQLite and PostgreSQL)."""
