"""A PostgreSQL database of the benchmark's own, and fast bulk loading of secrets.

Filler rows are made by the server itself (`generate_series`, random keys, one constant
ciphertext and hash): they make the table big but cannot be revealed. Rows the benchmark
reveals are built here exactly as the service builds them (lookup hash, AES-GCM sealed
secret, argon2id hash) and copied in with COPY.

Every bulk-loaded secret gets its `pending` receipt, linked by `secrets.receipt_id`, as the
service writes them: a table of a million secrets beside a million receipts is what a
service with a million live secrets has, and reveals and the purge then update receipts.
"""

import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from api.domain import crypto
from api.domain.hashing import Protected
from harness import postgres
from models import StoredReceiptStatus

ADMIN_DSN = os.environ.get("BENCH_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET_COLUMNS = (
    "id",
    "lookup_hash",
    "ciphertext",
    "passphrase_hash",
    "failed_attempts",
    "created_at",
    "expires_at",
    "receipt_id",
)
RECEIPT_COLUMNS = (
    "id",
    "lookup_hash",
    "status",
    "failed_attempts",
    "created_at",
    "expires_at",
    "closed_at",
    "retain_until",
)
PENDING = StoredReceiptStatus.PENDING.value
# One statement makes both rows of each secret: the CTE's receipts hand their ids (and
# expiries) to the secrets, so a million of each load in seconds without a round trip.
_FILLER_SQL = """
WITH made AS (
    INSERT INTO receipts (id, lookup_hash, status, failed_attempts, created_at, expires_at,
                          closed_at, retain_until)
    SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), $5, 0, now(),
           expires_at, NULL, expires_at + make_interval(secs => $6)
    FROM (
        SELECT now() + make_interval(secs => $3 + (g % 86400)) AS expires_at
        FROM generate_series(1, $4::int) AS g
    ) AS filler
    RETURNING id, expires_at
)
INSERT INTO secrets (id, lookup_hash, ciphertext, passphrase_hash, failed_attempts,
                     created_at, expires_at, receipt_id)
SELECT gen_random_uuid(), sha256(uuid_send(gen_random_uuid())), $1, $2, 0, now(),
       expires_at, id
FROM made
"""


def _dsn(name: str) -> str:
    return postgres.database_dsn(ADMIN_DSN, name)


async def create_database() -> str:
    """Create an empty database with a random name and return that name."""
    return await postgres.create_database(ADMIN_DSN, prefix="bench")


async def drop_database(name: str) -> None:
    """Drop a database made by `create_database`, closing its leftover connections."""
    await postgres.drop_database(ADMIN_DSN, name)


def sqlalchemy_url(name: str) -> str:
    """Return the service's DATABASE_URL for database `name`."""
    return postgres.sqlalchemy_url(_dsn(name))


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
    connection: asyncpg.Connection,
    count: int,
    *,
    passphrase_hash: str,
    expired: bool,
    retention_seconds: int,
) -> None:
    """Insert `count` rows that nobody can reveal, live for hours or expired long ago.

    Each gets a pending receipt kept `retention_seconds` past its expiry.
    """
    ciphertext = os.urandom(crypto.NONCE_BYTES + 64 + 16)
    offset = -90_000 if expired else 3_600
    await connection.execute(
        _FILLER_SQL, ciphertext, passphrase_hash, offset, count, PENDING, retention_seconds
    )


async def insert_revealable(
    connection: asyncpg.Connection,
    count: int,
    *,
    passphrase: str,
    protected: Protected,
    retention_seconds: int,
) -> list[list[str]]:
    """Insert `count` real, live secrets with their receipts; return `[key, passphrase, secret]`.

    Each receipt is found by the hash of a receipt key of its own, as the service makes it;
    the benchmark never looks receipts up, so the receipt keys are not returned.
    """
    now = datetime.now(UTC)
    expires_at = now + timedelta(hours=6)
    retain_until = expires_at + timedelta(seconds=retention_seconds)
    receipt_rows = []
    secret_rows = []
    keys = []
    for index in range(count):
        key = crypto.new_key()
        secret = f"bulk-loaded secret {index} ".ljust(64, ".")
        row_id, receipt_id = uuid.uuid4(), uuid.uuid4()
        sealed = crypto.seal(
            secret.encode(),
            secret_key=key,
            key_material=protected.key_material,
            associated_data=row_id.bytes,
        )
        receipt_hash = crypto.lookup_hash(crypto.new_key())
        receipt_rows.append(
            (receipt_id, receipt_hash, PENDING, 0, now, expires_at, None, retain_until)
        )
        secret_rows.append(
            (
                row_id,
                crypto.lookup_hash(key),
                sealed,
                protected.record,
                0,
                now,
                expires_at,
                receipt_id,
            )
        )
        keys.append([key, passphrase, secret])
    # One transaction, as the service creates them: no secret is ever seen without its receipt.
    async with connection.transaction():
        await connection.copy_records_to_table(
            "receipts", records=receipt_rows, columns=RECEIPT_COLUMNS
        )
        await connection.copy_records_to_table(
            "secrets", records=secret_rows, columns=SECRET_COLUMNS
        )
    return keys


async def count_rows(connection: asyncpg.Connection, table: str = "secrets") -> int:
    """How many rows `table` holds."""
    count: int = await connection.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
    return count


async def vacuum_analyze(
    connection: asyncpg.Connection, tables: tuple[str, ...] = ("secrets", "receipts")
) -> None:
    """Vacuum and analyse `tables`, as autovacuum eventually would."""
    await connection.execute(f"VACUUM ANALYZE {', '.join(tables)}")
