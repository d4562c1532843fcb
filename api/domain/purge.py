"""Purging expired secrets: once, or as a background task that outlives database outages."""

import asyncio
import logging

from api.domain import events
from api.storage.database import Database
from api.storage.purge import delete_expired, delete_old_receipts

logger = logging.getLogger(__name__)


async def purge_expired(*, db: Database, batch_size: int, pause_seconds: float = 0.0) -> int:
    """Delete expired secrets (and receipts past retention); report and return the secrets."""
    purged = await delete_expired(db=db, batch_size=batch_size, pause_seconds=pause_seconds)
    if purged:
        events.emit(events.PURGED, purged)
    await delete_old_receipts(db=db, batch_size=batch_size, pause_seconds=pause_seconds)
    return purged


async def purge_forever(
    db: Database, *, interval_seconds: float, batch_size: int, pause_seconds: float
) -> None:
    """Purge every `interval_seconds` until cancelled; a failed round is retried next time."""
    while True:
        try:
            purged = await purge_expired(db=db, batch_size=batch_size, pause_seconds=pause_seconds)
            if purged:
                logger.info("purged %d expired secrets", purged)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a crash here would stop purging for good
            logger.warning("purge failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_seconds)
