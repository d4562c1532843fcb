"""Apply Alembic migrations from the application, safely with several workers starting."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"
# Any constant works; it only has to be the same in every worker.
_MIGRATION_LOCK_ID = 0x07_5EC12E7


def alembic_config() -> Config:
    """Return the Alembic configuration of this project."""
    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(ALEMBIC_INI.parent / "alembic"))
    config.attributes["configure_logging"] = False
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    """Bring the schema to the newest revision, one process at a time.

    PostgreSQL serialises workers with an advisory lock, SQLite with its write lock.
    """
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Session-level lock: the second worker waits here, then finds nothing to do.
            await connection.execute(
                text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
            await connection.commit()
        elif connection.dialect.name == "sqlite":
            # SQLite has no advisory locks: take the write lock first, so a second worker waits
            # (busy timeout) and then finds the schema current; the DDL becomes atomic too.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            await connection.run_sync(_upgrade)
            await connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
                await connection.commit()
