"""Databases of their own on a running PostgreSQL server: made empty, dropped with FORCE."""

import uuid

import asyncpg

# asyncpg's own default for connecting.
CONNECT_TIMEOUT_SECONDS = 60.0


def database_dsn(admin_dsn: str, name: str) -> str:
    """Return the DSN of database `name` on the server of `admin_dsn`, as the same user."""
    return f"{admin_dsn.rsplit('/', 1)[0]}/{name}"


def sqlalchemy_url(dsn: str) -> str:
    """Return the service's DATABASE_URL for a `postgresql://` DSN (the asyncpg driver)."""
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


async def create_database(
    admin_dsn: str, *, prefix: str, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
) -> str:
    """Create an empty database named `prefix` and a random suffix; return its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn, timeout=connect_timeout)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(
    admin_dsn: str, name: str, *, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
) -> None:
    """Drop database `name` if it exists, closing its leftover connections."""
    admin = await asyncpg.connect(admin_dsn, timeout=connect_timeout)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
