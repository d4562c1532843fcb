"""Apply Alembic migrations from the application, safely with several workers starting."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from api.settings import Settings
from api.storage.database import create_engine

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

    PostgreSQL serialises workers with a transaction-level advisory lock, SQLite with its
    write lock.
    """
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Alembic runs inside this one transaction. A schema change, and the wait for
            # another worker's, may rightly outlast a statement_timeout set on the role
            # (as it is behind PgBouncer); SET LOCAL ends with the transaction.
            await connection.execute(text("SET LOCAL statement_timeout = 0"))
            # A transaction-level lock, held until COMMIT: the second worker waits here, then
            # finds nothing to do. Through PgBouncer in transaction mode a session lock could
            # be taken on one server connection and "released" on another, and stay held.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
        elif connection.dialect.name == "sqlite":
            # SQLite has no advisory locks: take the write lock first, so a second worker waits
            # (busy timeout) and then finds the schema current; the DDL becomes atomic too.
            await connection.exec_driver_sql("BEGIN IMMEDIATE")
        await connection.run_sync(_upgrade)
        await connection.commit()


async def migrate(settings: Settings) -> None:
    """Bring `settings.database_url` to the newest revision on an engine of its own.

    A schema change may take longer than the statement bound of the request engine.
    """
    engine = create_engine(settings, bound_statements=False)
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
