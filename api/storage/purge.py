"""Deleting expired secrets in batches, each batch one statement."""

import asyncio
from datetime import UTC, datetime

from api.storage import statements
from api.storage.database import Database


async def delete_expired(*, db: Database, batch_size: int, pause_seconds: float = 0.0) -> int:
    """Delete expired secrets in batches of `batch_size`; return how many were deleted.

    Each batch is its own statement, and `pause_seconds` pass between batches so that a
    large backlog does not crowd out reveals.
    """
    total = 0
    while True:
        rows = await db.fetch(statements.PURGE_BATCH, now=datetime.now(UTC), batch_size=batch_size)
        total += len(rows)
        if len(rows) < batch_size:
            return total
        await asyncio.sleep(pause_seconds)
