"""A PostgreSQL database of the benchmark's own, and fast bulk loading of secrets.

Filler rows are made by the server itself (`generate_series`, random keys, one constant
ciphertext and hash): they make the table big but cannot be revealed. Rows the benchmark
reveals are built here exactly as the service builds them (lookup hash, AES-GCM sealed
secret, argon2id hash) and copied in with COPY.
"""

import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from api.domain import crypto

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET_COLUMNS = (
    "id",
    "lookup_hash",
    "ciphertext",
    "passphrase_hash",
    "failed_attempts",
    "created_at",
    "expires_at",
)
_FILLER_SQL = """
INSERT INTO secrets (id, lookup_hash, ciphertext, passphrase_hash, failed_attempts,
                     created_at, expires_at)
SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), $1, $2, 0, now(),
       now() + make_interval(secs => $3 + (g % 86400))
FROM generate_series(1, $4::int) AS g
"""


def _dsn(name: str) -> str:
    return f"{ADMIN_DSN.rsplit('/', 1)[0]}/{name}"


async def create_database() -> str:
    """Create an empty database with a random name and return that name."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    """Drop a database made by `create_database`, closing its leftover connections."""
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def sqlalchemy_url(name: str) -> str:
    """Return the service's DATABASE_URL for database `name`."""
    return _dsn(name).replace("postgresql://", "postgresql+asyncpg://", 1)


async def connect(name: str) -> asyncpg.Connection:
    """Open a plain asyncpg connection to database `name`."""
    connection: asyncpg.Connection = await asyncpg.connect(_dsn(name))
    return connection


async def server_version(name: str) -> str:
    """Return the PostgreSQL server's version string."""
    connection = await connect(name)
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


async def insert_filler(
    connection: asyncpg.Connection, count: int, *, passphrase_hash: str, expired: bool
) -> None:
    """Insert `count` rows that nobody can reveal, live for hours or expired long ago."""
    ciphertext = os.urandom(crypto.NONCE_BYTES + 64 + 16)
    offset = -90_000 if expired else 3_600
    await connection.execute(_FILLER_SQL, ciphertext, passphrase_hash, offset, count)


async def insert_revealable(
    connection: asyncpg.Connection, count: int, *, passphrase: str, passphrase_hash: str
) -> list[list[str]]:
    """Insert `count` real, live secrets; return `[key, passphrase, secret]` for each."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(hours=6)
    records = []
    keys = []
    for index in range(count):
        key = crypto.new_key()
        secret = f"bulk-loaded secret {index} ".ljust(64, ".")
        row_id = uuid.uuid4()
        sealed = crypto.seal(secret.encode(), secret_key=key, associated_data=row_id.bytes)
        records.append(
            (row_id, crypto.lookup_hash(key), sealed, passphrase_hash, 0, now, expires_at)
        )
        keys.append([key, passphrase, secret])
    await connection.copy_records_to_table("secrets", records=records, columns=SECRET_COLUMNS)
    return keys


async def count_rows(connection: asyncpg.Connection, table: str = "secrets") -> int:
    """How many rows `table` holds."""
    count: int = await connection.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
    return count


async def vacuum_analyze(connection: asyncpg.Connection, table: str = "secrets") -> None:
    """Vacuum and analyse `table`, as autovacuum eventually would."""
    await connection.execute(f"VACUUM ANALYZE {table}")
