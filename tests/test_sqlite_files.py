"""The SQLite files: owner-only permissions, and no remnant of a revealed secret.

A canary secret is created, then revealed (burned, revoked, destroyed), and the database file
and its `-wal` and `-shm` are searched for its ciphertext. The cost of scrubbing is printed:
reveals with and without it, in the same run.
"""

import os
import stat
import statistics
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from api.domain import crypto, receipts, service
from api.domain.errors import SecretNotFound
from api.settings import Settings
from api.storage.database import Database, create_engine
from api.storage.migrations import upgrade_to_head
from api.storage.statements import columns

PASSPHRASE = "canary-file-passphrase"


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


async def test_files_are_readable_by_their_owner_only(files_db: tuple[Database, Path]) -> None:
    database, path = files_db
    await service.create_secret(db=database, secret="s", passphrase=PASSPHRASE)
    found = _files(path)
    assert {file.name for file in found} >= {"secrets.db", "secrets.db-wal", "secrets.db-shm"}
    for file in found:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


async def _ciphertext_of(database: Database, key: str) -> bytes:
    rows = await database.fetch(
        select(columns.ciphertext).where(columns.lookup_hash == crypto.lookup_hash(key))
    )
    return bytes(rows[0][0])


@pytest.mark.parametrize("ending", ["reveal", "burn", "revoke", "destroy"])
async def test_a_deleted_secret_leaves_no_ciphertext_in_the_files(
    files_db: tuple[Database, Path], ending: str
) -> None:
    database, path = files_db
    # Neighbours written before and after, so the canary's page is shared and rewritten.
    for number in range(20):
        await service.create_secret(db=database, secret=f"neighbour {number}", passphrase="n")
    created = await service.create_secret(
        db=database, secret="canary-file-secret " * 50, passphrase=PASSPHRASE
    )
    for number in range(20):
        await service.create_secret(db=database, secret=f"after {number}", passphrase="n")
    ciphertext = await _ciphertext_of(database, created.secret_key)
    # Probe with a stretch from the middle: long enough to be unique, in one page.
    probe = ciphertext[40:72]
    assert any(probe in _read(file) for file in _files(path))
    if ending == "reveal":
        await service.reveal_secret(
            db=database, secret_key=created.secret_key, passphrase=PASSPHRASE
        )
    elif ending == "burn":
        await service.burn_secret(db=database, secret_key=created.secret_key, passphrase=PASSPHRASE)
    elif ending == "revoke":
        await receipts.revoke_secret(db=database, receipt_key=created.receipt_key)
    else:
        for _ in range(5):
            with pytest.raises(SecretNotFound):
                await service.reveal_secret(
                    db=database, secret_key=created.secret_key, passphrase="wrong"
                )
    for file in _files(path):
        assert probe not in _read(file), file.name


async def test_cost_of_scrubbing(
    files_db: tuple[Database, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    database, _ = files_db

    async def reveal_times(scrub: bool) -> list[float]:
        database._scrubs = scrub
        times = []
        for _ in range(60):
            created = await service.create_secret(db=database, secret="x" * 200, passphrase="p")
            started = time.perf_counter()
            await service.reveal_secret(db=database, secret_key=created.secret_key, passphrase="p")
            times.append((time.perf_counter() - started) * 1000)
        return times

    without, with_scrub = await reveal_times(False), await reveal_times(True)
    database._scrubs = True
    with capsys.disabled():
        print(
            f"\nSQLite reveal p50 without scrubbing {statistics.median(without):.2f} ms, "
            f"with {statistics.median(with_scrub):.2f} ms (cheap argon2, so this is all I/O)"
        )
