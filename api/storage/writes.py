"""Storing a secret and deleting it: one transaction each, with its receipt and the quota.

- `store`: the receipt, the secret and the storage quota's reservation. All three happen,
  or none (the quota is full).
- `take` (a reveal), `burn`, `destroy` (the attempt limit), `revoke` (the sender): delete
  the secret, close its receipt (`close_receipt`), queue the notification its sender asked
  for, and give its room back to the quota. Only one caller can delete the row, so only one
  closes the receipt, and only a reveal that deleted it gets the ciphertext.

The claims of passphrase attempts are in `api.storage.attempts`, the purge's batches in
`api.storage.purge`. These writes once ran as one statement each on PostgreSQL
(data-modifying CTEs): 1.027x the goodput at saturation in an A/B at the default argon2,
under the 5% that a second path has to earn, so both databases take this one.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable

from api.storage import notifications, statements, usage
from api.storage.database import Database, Transaction
from models import StoredReceiptStatus


class _Full(Exception):
    """The reservation failed: the transaction must not commit."""


@dataclass(frozen=True, slots=True)
class Ended:
    """A secret this caller deleted.

    `ciphertext` is a reveal's; `notified` says whether its receipt queued a notification
    (`api.storage.notifications`).
    """

    ciphertext: bytes | None = None
    notified: bool = False


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
) -> bool:
    """Record on a secret's receipt (if it has one) why the secret is gone, at `now`.

    Run by the caller that deleted the secret, in the same transaction, which also queues
    the notification its sender asked for; returns whether it queued one. `right_attempt`:
    the secret was taken with the right passphrase, so the attempt claimed for that check is
    taken off the receipt's failed attempts.
    """
    if receipt_id is None:
        return False
    closed = await transaction.execute(
        statements.CLOSE_RECEIPT,
        receipt_id=receipt_id,
        status=status.value,
        closed_at=now,
        right_attempt=int(right_attempt),
    )
    if not closed or closed[0][0] is None:
        return False
    await notifications.queue(transaction, [receipt_id], now)
    return True


async def take(
    db: Database, *, row_id: uuid.UUID, receipt_id: uuid.UUID | None, now: datetime
) -> Ended | None:
    """Delete the live secret `row_id` as revealed, with its ciphertext; None if gone."""
    return await _delete(
        db,
        statements.DELETE_LIVE,
        {"id": row_id, "now": now},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.REVEALED,
        now=now,
        right_attempt=True,
    )


async def burn(
    db: Database, *, row_id: uuid.UUID, receipt_id: uuid.UUID | None, now: datetime
) -> Ended | None:
    """Delete the secret `row_id` unread, by its recipient; None if it was gone."""
    return await _delete(
        db,
        statements.DELETE,
        {"id": row_id},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.BURNED,
        now=now,
        right_attempt=True,
    )


async def destroy(
    db: Database, *, row_id: uuid.UUID, receipt_id: uuid.UUID | None, now: datetime
) -> Ended | None:
    """Delete the secret `row_id`, whose last attempt failed; None if it was gone."""
    return await _delete(
        db,
        statements.DELETE,
        {"id": row_id},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.DESTROYED,
        now=now,
    )


async def revoke(db: Database, *, receipt_id: uuid.UUID, now: datetime) -> Ended | None:
    """Delete the live secret of the receipt `receipt_id`; None if there was none."""
    return await _delete(
        db,
        statements.DELETE_LIVE_OF_RECEIPT,
        {"receipt_id": receipt_id, "now": now},
        receipt_id=receipt_id,
        status=StoredReceiptStatus.REVOKED,
        now=now,
    )


async def _delete(
    db: Database,
    deletion: Executable,
    parameters: Mapping[str, Any],
    *,
    receipt_id: uuid.UUID | None,
    status: StoredReceiptStatus,
    now: datetime,
    right_attempt: bool = False,
) -> Ended | None:
    # `deletion` returns each deleted row's size first, and a reveal's ciphertext after it.
    async with db.transaction() as transaction:
        rows = await transaction.execute(deletion, **parameters)
        if not rows:
            return None
        notified = await close_receipt(
            transaction, receipt_id, status, now=now, right_attempt=right_attempt
        )
        await usage.release(transaction, sizes=[row[0] for row in rows])
    ciphertext = bytes(rows[0][1]) if len(rows[0]) > 1 else None
    return Ended(ciphertext=ciphertext, notified=notified)
