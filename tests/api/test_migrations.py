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

from harness import ROOT
from models import metadata
from tests.conftest import create_pg_database, drop_pg_database


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


async def test_secrets_stored_before_receipts_stay_revealable(empty_database: str) -> None:
    """A database holding live secrets at revision 0001 is upgraded; they still reveal."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from passlib.hash import argon2 as passlib_argon2
    from sqlalchemy import insert

    from api.domain import crypto, service
    from api.domain.hashing import LEGACY, PassphraseHasher
    from api.settings import Settings
    from api.storage.database import Database, create_engine
    from api.storage.statements import secrets_table
    from tests.conftest import suite_settings

    alembic(empty_database, "upgrade", "0001")
    database = Database(create_engine(Settings(database_url=empty_database)))
    settings = suite_settings()
    hasher = PassphraseHasher.from_settings(settings)
    try:
        keys = []
        for number in range(3):
            key, row_id, now = crypto.new_key(), uuid.uuid4(), datetime.now(UTC)
            secret = f"stored before receipts {number}".encode()
            # Exactly the columns of revision 0001, as the previous release wrote them.
            await database.execute(
                insert(secrets_table).values(
                    id=row_id,
                    lookup_hash=crypto.lookup_hash(key),
                    # The previous release's format: a passlib record, sealed by the key alone.
                    ciphertext=crypto.seal(
                        secret, secret_key=key, key_material=LEGACY, associated_data=row_id.bytes
                    ),
                    passphrase_hash=passlib_argon2.using(
                        type="ID", memory_cost=1024, rounds=1
                    ).hash("old passphrase"),
                    failed_attempts=0,
                    created_at=now,
                    expires_at=now + timedelta(hours=1),
                )
            )
            keys.append(key)
        alembic(empty_database, "upgrade", "head")
        for number, key in enumerate(keys):
            revealed = await service.reveal_secret(
                db=database,
                settings=settings,
                hasher=hasher,
                secret_key=key,
                passphrase="old passphrase",
            )
            assert revealed == f"stored before receipts {number}"
        new = await service.create_secret(
            db=database, settings=settings, hasher=hasher, secret="new", passphrase="p"
        )
        assert (
            await service.reveal_secret(
                db=database,
                settings=settings,
                hasher=hasher,
                secret_key=new.secret_key,
                passphrase="p",
            )
            == "new"
        )
    finally:
        await database.aclose()
