"""Storage: the SQLAlchemy tables, the only place with SQL, and the Alembic migrations."""
