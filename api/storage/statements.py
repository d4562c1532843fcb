"""The SQL the service runs, built once with SQLAlchemy Core and bound per call.

Each statement is atomic on its own; `api.domain.service` explains how they combine into an
exactly-once reveal.
"""

from sqlalchemy import Table, bindparam, delete, func, insert, literal, select, update

from models import Secret

secrets_table: Table = Secret.__table__  # type: ignore[attr-defined]
columns = secrets_table.c

# Every column is given a value, so the INSERT names them all.
INSERT_SECRET = insert(secrets_table)
# Claims one passphrase check on a live secret that has attempts left; returns the row.
CLAIM_ATTEMPT = (
    update(secrets_table)
    .where(
        columns.lookup_hash == bindparam("digest"),
        columns.expires_at > bindparam("now"),
        columns.failed_attempts < bindparam("max_attempts"),
    )
    .values(failed_attempts=columns.failed_attempts + 1)
    .returning(columns.id, columns.passphrase_hash, columns.failed_attempts)
)
# Takes a live row: only one caller can, so only one caller gets the ciphertext.
DELETE_LIVE = (
    delete(secrets_table)
    .where(columns.id == bindparam("id"), columns.expires_at > bindparam("now"))
    .returning(columns.ciphertext)
)
DELETE = delete(secrets_table).where(columns.id == bindparam("id")).returning(columns.id)
# Concurrent purgers (several workers or instances) skip each other's rows on PostgreSQL.
PURGE_BATCH = (
    delete(secrets_table)
    .where(
        columns.id.in_(
            select(columns.id)
            .where(columns.expires_at <= bindparam("now"))
            .limit(bindparam("batch_size"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .returning(columns.id)
)
COUNT_LIVE = (
    select(func.count()).select_from(secrets_table).where(columns.expires_at > bindparam("now"))
)
PING = select(literal(1))
