"""API tests: the application in-process (`client`, `db`), on SQLite and PostgreSQL."""
