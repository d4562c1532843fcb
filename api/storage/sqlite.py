"""The embedded SQLite file: private to its owner, and no remnant of a deleted secret.

- The database file is created readable and writable by its owner only (0600), whatever
  the process umask; SQLite gives its `-wal` and `-shm` files the main file's permissions.
- `secure_delete` overwrites a deleted row's bytes in its page (Debian builds SQLite with it
  on by default, other builds may not), and `scrub` checkpoints the write-ahead log into the
  main file and truncates it after every deletion, so neither file keeps a revealed secret's
  ciphertext. Measured cost: see `tests/api/test_sqlite_files.py`.
"""

import os
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

BUSY_TIMEOUT_MS = 10_000
# Moves every WAL frame into the main file and empties the WAL; waits for readers (busy
# timeout) rather than leaving frames behind.
SCRUB = text("PRAGMA wal_checkpoint(TRUNCATE)")


def database_path(url: str) -> Path | None:
    """Return the file of a `sqlite+aiosqlite:///…` URL, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def create_private_file(url: str) -> None:
    """Create the database file with mode 0600 if it does not exist yet."""
    path = database_path(url)
    if path is None or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another worker created it first
        return
    os.close(descriptor)


def configure_connection(dbapi_connection: Any, _record: Any) -> None:
    """Set up each new connection: WAL, a busy timeout, secure deletion."""
    # WAL lets readers run beside the writer; the busy timeout makes racing writers from
    # several processes wait their turn instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()
