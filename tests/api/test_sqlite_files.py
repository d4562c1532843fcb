"""The SQLite files: owner-only permissions, and no remnant of a revealed secret.

A canary secret is created, then revealed (burned, revoked, destroyed), and the database file
and its `-wal` and `-shm` are searched for its ciphertext.
"""

import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from api.domain import crypto, receipts, service
from api.domain.errors import SecretNotFound
from api.domain.hashing import PassphraseHasher
from api.settings import Settings
from api.storage import sqlite
from api.storage.database import Database, create_engine
from api.storage.migrations import upgrade_to_head
from api.storage.statements import secret_columns
from tests.conftest import suite_settings

PASSPHRASE = "canary-file-passphrase"


@pytest.fixture
def settings() -> Settings:
    """The suite's settings: these tests take no application, only a database of their own."""
    return suite_settings()


@pytest.fixture
def hasher(settings: Settings) -> PassphraseHasher:
    """A hasher of the suite's settings."""
    return PassphraseHasher.from_settings(settings)


@pytest.fixture
async def files_db(tmp_path: Path) -> AsyncIterator[tuple[Database, Path]]:
    """A fresh SQLite database, created under a permissive umask."""
    path = tmp_path / "data" / "secrets.db"
    url = f"sqlite+aiosqlite:///{path}"
    previous = os.umask(0o022)  # what a service manager often leaves: world-readable files
    try:
        engine = create_engine(Settings(database_url=url))
        await upgrade_to_head(engine)
        database = Database(engine)
        yield database, path
    finally:
        os.umask(previous)
    await database.aclose()


def _read(file: Path) -> bytes:
    # Read by another process: opening and closing a live SQLite file in this one would drop
    # SQLite's POSIX locks on it.
    return subprocess.run(  # noqa: S603
        ["cat", str(file)],  # noqa: S607
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout


def _files(path: Path) -> list[Path]:
    return [
        Path(f"{path}{suffix}")
        for suffix in ("", "-wal", "-shm")
        if Path(f"{path}{suffix}").exists()
    ]


async def test_files_are_readable_by_their_owner_only(
    files_db: tuple[Database, Path], settings: Settings, hasher: PassphraseHasher
) -> None:
    database, path = files_db
    await service.create_secret(
        db=database, settings=settings, hasher=hasher, secret="s", passphrase=PASSPHRASE
    )
    found = _files(path)
    assert {file.name for file in found} >= {"secrets.db", "secrets.db-wal", "secrets.db-shm"}
    for file in found:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


async def _ciphertext_of(database: Database, key: str) -> bytes:
    rows = await database.execute(
        select(secret_columns.ciphertext).where(
            secret_columns.lookup_hash == crypto.lookup_hash(key)
        )
    )
    return bytes(rows[0][0])


@pytest.mark.parametrize("ending", ["reveal", "burn", "revoke", "destroy"])
async def test_a_deleted_secret_leaves_no_ciphertext_in_the_files(
    files_db: tuple[Database, Path], ending: str, settings: Settings, hasher: PassphraseHasher
) -> None:
    database, path = files_db
    # Neighbours written before and after, so the canary's page is shared and rewritten.
    for number in range(20):
        await service.create_secret(
            db=database,
            settings=settings,
            hasher=hasher,
            secret=f"neighbour {number}",
            passphrase="n",
        )
    created = await service.create_secret(
        db=database,
        settings=settings,
        hasher=hasher,
        secret="canary-file-secret " * 50,
        passphrase=PASSPHRASE,
    )
    for number in range(20):
        await service.create_secret(
            db=database, settings=settings, hasher=hasher, secret=f"after {number}", passphrase="n"
        )
    ciphertext = await _ciphertext_of(database, created.secret_key)
    # Probe with a stretch from the middle: long enough to be unique, in one page.
    probe = ciphertext[40:72]
    assert any(probe in _read(file) for file in _files(path))
    await _end(ending, database, settings, hasher, created)
    for file in _files(path):
        assert probe not in _read(file), file.name


@pytest.mark.parametrize("ending", ["reveal", "burn", "revoke", "destroy"])
async def test_a_failed_scrub_never_takes_back_a_committed_ending(
    files_db: tuple[Database, Path],
    ending: str,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    hasher: PassphraseHasher,
) -> None:
    """The scrub runs after the deletion has committed: if it fails, the answer still goes out.

    Answering 503 then would lose the secret: deleted, its receipt saying `revealed`, and a
    retry getting 404. Here SQLite really refuses the scrub's statement (a busy machine makes
    it fail by a pool or lock timeout instead); the next scrub empties the log.
    """
    database, _ = files_db
    monkeypatch.setattr(sqlite, "SCRUB", text("SELECT * FROM no_such_table"))
    created = await service.create_secret(
        db=database,
        settings=settings,
        hasher=hasher,
        secret="kept despite the scrub",
        passphrase=PASSPHRASE,
    )
    revealed = await _end(ending, database, settings, hasher, created)
    if ending == "reveal":
        assert revealed == "kept despite the scrub"
    receipt = await receipts.get_receipt(db=database, receipt_key=created.receipt_key)
    expected = {"reveal": "revealed", "burn": "burned", "revoke": "revoked", "destroy": "destroyed"}
    assert receipt.status.value == expected[ending]


async def _end(
    ending: str,
    database: Database,
    settings: Settings,
    hasher: PassphraseHasher,
    created: service.CreatedSecret,
) -> str | None:
    """End the secret as `ending` says; return its text when revealed."""
    if ending == "reveal":
        return await service.reveal_secret(
            db=database,
            settings=settings,
            hasher=hasher,
            secret_key=created.secret_key,
            passphrase=PASSPHRASE,
        )
    if ending == "burn":
        await service.burn_secret(
            db=database,
            settings=settings,
            hasher=hasher,
            secret_key=created.secret_key,
            passphrase=PASSPHRASE,
        )
    elif ending == "revoke":
        await receipts.revoke_secret(db=database, receipt_key=created.receipt_key)
    else:  # destroy: the attempt limit
        for _ in range(5):
            with pytest.raises(SecretNotFound):
                await service.reveal_secret(
                    db=database,
                    settings=settings,
                    hasher=hasher,
                    secret_key=created.secret_key,
                    passphrase="wrong",
                )
    return None
