"""Apply Alembic migrations from the application, safely with several workers starting."""

from pathlib import Path

from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"
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
    """Bring the schema to the newest revision; on PostgreSQL under an advisory lock."""
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Session-level lock: the second worker waits here, then finds nothing to do.
            await connection.execute(
                text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID}
            )
            await connection.commit()
        try:
            await connection.run_sync(_upgrade)
            await connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID}
                )
                await connection.commit()
