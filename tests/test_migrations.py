"""Alembic owns the schema: upgrade from empty, models agree with migrations, downgrade works."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from models import metadata
from tests.conftest import create_pg_database, drop_pg_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgres"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}"
        return
    url = await create_pg_database()
    yield url
    await drop_pg_database(url)


def alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real `alembic` command line, as an operator would."""
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_matches_models_and_downgrade_empties(empty_database: str) -> None:
    alembic(empty_database, "upgrade", "head")
    engine = create_async_engine(empty_database, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            assert "secrets" in await connection.run_sync(_tables)
        current = alembic(empty_database, "current")
        assert "(head)" in current.stdout
        alembic(empty_database, "downgrade", "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) <= {"alembic_version"}
        alembic(empty_database, "upgrade", "head")
    finally:
        await engine.dispose()


async def test_app_migrates_on_start_and_is_idempotent(empty_database: str) -> None:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from api.storage.migrations import upgrade_to_head

    engine: AsyncEngine = create_async_engine(empty_database, poolclass=NullPool)
    try:
        await upgrade_to_head(engine)
        await upgrade_to_head(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
