"""Storing a secret and deleting it: one transaction each, with its receipt and the quota.

- `store`: the receipt, the secret and the storage quota's reservation. All three happen,
  or none (the quota is full).
- `take` (a reveal), `burn`, `destroy` (the attempt limit), `revoke` (the sender): delete
  the secret, close its receipt (`close_receipt`) and give its room back to the quota. Only
  one caller can delete the row, so only one closes the receipt, and only a reveal that
  deleted it gets the ciphertext.

The claims of passphrase attempts are in `api.storage.attempts`, the purge's batches in
`api.storage.purge`. These writes once ran as one statement each on PostgreSQL
(data-modifying CTEs): 1.027x the goodput at saturation in an A/B at the default argon2,
under the 5% that a second path has to earn, so both databases take this one.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Executable

from api.storage import statements, usage
from api.storage.database import Database, Rows, Transaction
from models import StoredReceiptStatus


class _Full(Exception):
    """The reservation failed: the transaction must not commit."""


async def store(
    db: Database,
    *,
    receipt: Mapping[str, Any],
    secret: Mapping[str, Any],
    max_bytes: int,
    max_secrets: int,
) -> bool:
    """Store `secret` and its pending `receipt` (column values) if the quota allows; say whether.

    `receipt` has every column but `status`, `failed_attempts` and `closed_at`.
    """
    try:
        async with db.transaction() as transaction:
            await transaction.execute(
                statements.INSERT_RECEIPT,
                **receipt,
                status=StoredReceiptStatus.PENDING.value,
                failed_attempts=0,
                closed_at=None,
            )
            await transaction.execute(statements.INSERT_SECRET, **secret)
            # Last, so the quota's row stays locked only from here to COMMIT.
            reserved = await usage.reserve(
                transaction,
                size=len(secret["ciphertext"]),
                max_bytes=max_bytes,
                max_secrets=max_secrets,
            )
            if not reserved:
                raise _Full  # rolls the inserts back
    except _Full:
        return False
    return True


async def close_receipt(
    transaction: Transaction,
    receipt_id: uuid.UUID | None,
    status: StoredReceiptStatus,
    *,
    now: datetime,
    right_attempt: bool = False,
) -> None:
    """Record on a secret's receipt (if it has one) why the secret is gone, at `now`.

    Run by the caller that deleted the secret, in the same transaction. `right_attempt`: the
    secret was taken with the right passphrase, so the attempt claimed for that check is
    taken off the receipt's failed attempts.
    """
    if receipt_id is not None:
        await transaction.execute(
            statements.CLOSE_RECEIPT,
            receipt_id=receipt_id,
            status=status.value,
            closed_at=now,
            right_attempt=int(right_attempt),
        )


async def take(
    db: Database, *, row_id: uuid.UUID, receipt_id: uuid.UUID | None, now: datetime
) -> bytes | None:
    """Delete the live secret `row_id` as revealed; return its ciphertext, or None if gone."""
    rows = await _delete(
        db,
        statements.DELETE_LIVE,
        {"id": row_id, "now": now},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.REVEALED,
        now=now,
        right_attempt=True,
    )
    return bytes(rows[0][1]) if rows else None


async def burn(
    db: Database, *, row_id: uuid.UUID, receipt_id: uuid.UUID | None, now: datetime
) -> bool:
    """Delete the secret `row_id` unread, by its recipient; say whether it was still there."""
    rows = await _delete(
        db,
        statements.DELETE,
        {"id": row_id},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.BURNED,
        now=now,
        right_attempt=True,
    )
    return bool(rows)


async def destroy(
    db: Database, *, row_id: uuid.UUID, receipt_id: uuid.UUID | None, now: datetime
) -> bool:
    """Delete the secret `row_id`, whose last attempt failed; say whether it was still there."""
    rows = await _delete(
        db,
        statements.DELETE,
        {"id": row_id},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.DESTROYED,
        now=now,
    )
    return bool(rows)


async def revoke(db: Database, *, receipt_id: uuid.UUID, now: datetime) -> bool:
    """Delete the live secret of the receipt `receipt_id`; say whether there was one."""
    rows = await _delete(
        db,
        statements.DELETE_LIVE_OF_RECEIPT,
        {"receipt_id": receipt_id, "now": now},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.REVOKED,
        now=now,
    )
    return bool(rows)


async def _delete(
    db: Database,
    deletion: Executable,
    parameters: Mapping[str, Any],
    *,
    receipt_id: uuid.UUID | None,
    status: StoredReceiptStatus,
    now: datetime,
    right_attempt: bool = False,
) -> Rows:
    # `deletion` returns each deleted row's size first.
    async with db.transaction() as transaction:
        rows = await transaction.execute(deletion, **parameters)
        if rows:
            await close_receipt(
                transaction, receipt_id, status, now=now, right_attempt=right_attempt
            )
            await usage.release(transaction, sizes=[row[0] for row in rows])
    return rows
