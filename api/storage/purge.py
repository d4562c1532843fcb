"""Deleting expired secrets, and receipts past their retention, in batches.

Each batch of secrets is one transaction that also marks their receipts `expired`, so a
receipt never says `pending` for a secret that is gone, and gives their room back to the
storage quota. Concurrent purgers (several workers
or instances) skip each other's rows on PostgreSQL.
"""

import asyncio
from datetime import UTC, datetime

from api.storage import statements, usage
from api.storage.database import Database


async def delete_expired(*, db: Database, batch_size: int, pause_seconds: float = 0.0) -> int:
    """Delete expired secrets in batches of `batch_size`; return how many were deleted.

    `pause_seconds` pass between batches so that a large backlog does not crowd out reveals.
    """
    total = 0
    while True:
        deleted = await _delete_batch(db, batch_size)
        total += deleted
        if deleted < batch_size:
            if total:
                await db.scrub()
            return total
        await asyncio.sleep(pause_seconds)


async def _delete_batch(db: Database, batch_size: int) -> int:
    now = datetime.now(UTC)
    if db.dialect == "postgresql":
        rows = await db.fetch(
            statements.PURGE_BATCH_EXPIRING_RECEIPTS,
            now=now,
            batch_size=batch_size,
            release_shard=usage.release_shard(),
        )
        return int(rows[0][0])
    async with db.transaction() as transaction:
        rows = await transaction.fetch(statements.PURGE_BATCH, now=now, batch_size=batch_size)
        receipt_ids = [receipt_id for _, receipt_id, _ in rows if receipt_id is not None]
        if receipt_ids:
            await transaction.fetch(statements.EXPIRE_RECEIPTS, receipt_ids=receipt_ids)
        await usage.release(transaction, sizes=[size for _, _, size in rows])
    return len(rows)


async def delete_old_receipts(*, db: Database, batch_size: int, pause_seconds: float = 0.0) -> int:
    """Delete receipts whose retention has passed, in batches; return how many."""
    total = 0
    while True:
        rows = await db.fetch(
            statements.PURGE_RECEIPTS_BATCH, now=datetime.now(UTC), batch_size=batch_size
        )
        total += len(rows)
        if len(rows) < batch_size:
            return total
        await asyncio.sleep(pause_seconds)
