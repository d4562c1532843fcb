"""A stolen database plus the link is not enough: the passphrase is part of the content key.

The attacker here holds a copy of the database (the SQLite file with its `-wal`, or a
`pg_dump` of PostgreSQL) and the secret key, and runs argon2id on passphrase guesses
offline, deriving the content key exactly as the service does. A wrong guess does not
decrypt; only the right one does; and the secret key alone (how secrets were sealed before
the passphrase took part) decrypts nothing.
"""

import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from api.domain import crypto, service
from api.domain.hashing import LEGACY, PassphraseHasher, evaluate
from api.settings import Settings
from api.storage.database import Database
from tests.conftest import PG_ADMIN_DSN

SECRET = "canary-offline-secret"
PASSPHRASE = "canary-offline-passphrase"


def _stolen_row_sqlite(database_url: str, key: str, tmp_path: Path) -> tuple[str, bytes, bytes]:
    source = Path(database_url.split("///", 1)[1])
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            # Copied by another process, as a thief would: a process that opens and closes a
            # live SQLite file itself drops SQLite's POSIX locks on it (SQLite's own warning).
            subprocess.run(  # noqa: S603
                ["cp", f"{source}{suffix}", str(tmp_path / f"stolen.db{suffix}")],  # noqa: S607
                check=True,
                timeout=30,
            )
    with sqlite3.connect(tmp_path / "stolen.db") as stolen:
        record, ciphertext, row_id = stolen.execute(
            "SELECT passphrase_hash, ciphertext, id FROM secrets WHERE lookup_hash = ?",
            (crypto.lookup_hash(key),),
        ).fetchone()
    return record, ciphertext, uuid.UUID(row_id).bytes


def _stolen_row_postgres(database_url: str, key: str) -> tuple[str, bytes, bytes]:
    name = database_url.rsplit("/", 1)[1]
    dsn = PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    dump = subprocess.run(  # noqa: S603
        ["pg_dump", "--data-only", "--table=secrets", dsn],  # noqa: S607
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    lines = dump.split("COPY public.secrets ", 1)[1].splitlines()
    columns = lines[0].split("(", 1)[1].split(")", 1)[0].split(", ")
    digest = "\\\\x" + crypto.lookup_hash(key).hex()
    for line in lines[1:]:
        row = dict(zip(columns, line.split("\t"), strict=True))
        if row["lookup_hash"] == digest:
            ciphertext = bytes.fromhex(row["ciphertext"][3:])
            return row["passphrase_hash"], ciphertext, uuid.UUID(row["id"]).bytes
    raise AssertionError("row not in the dump")


def _offline_decrypt(record: str, ciphertext: bytes, row_id: bytes, key: str, guess: str) -> str:
    """What an attacker runs per guess: one argon2id evaluation, then AES-GCM.

    The verifier is not even consulted: the guess goes straight into the content key.
    """
    _, key_material = evaluate(guess, record)
    return crypto.open_sealed(
        ciphertext, secret_key=key, key_material=key_material, associated_data=row_id
    ).decode()


async def test_database_and_link_without_the_passphrase_decrypt_nothing(
    db: Database,
    database_url: str,
    backend: str,
    tmp_path: Path,
    settings: Settings,
    hasher: PassphraseHasher,
) -> None:
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=SECRET, passphrase=PASSPHRASE
    )
    key = created.secret_key
    if backend == "sqlite":
        record, ciphertext, row_id = _stolen_row_sqlite(database_url, key, tmp_path)
    else:
        if shutil.which("pg_dump") is None:
            pytest.fail("pg_dump is needed to copy the PostgreSQL database")
        record, ciphertext, row_id = _stolen_row_postgres(database_url, key)
    assert record.startswith("$ots2$")
    for guess in ("wrong", PASSPHRASE.upper(), PASSPHRASE + " "):
        with pytest.raises(InvalidTag):
            _offline_decrypt(record, ciphertext, row_id, key, guess)
    # The old attack, the secret key alone, no longer works either.
    with pytest.raises(InvalidTag):
        crypto.open_sealed(ciphertext, secret_key=key, key_material=LEGACY, associated_data=row_id)
    assert _offline_decrypt(record, ciphertext, row_id, key, PASSPHRASE) == SECRET
