"""Fault tests: real uvicorn processes against a PostgreSQL server the tests control."""
