"""Where events, identities and profiles live: the SQL store (SQLite or PostgreSQL)."""
