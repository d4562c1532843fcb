"""Purging expired secrets: once, or as a background task that outlives database outages.

What a round deletes, and in which transactions, is `api.storage.purge`; here is when it
runs, the time it runs at (`api.domain.clock`), and what it reports.
"""

import asyncio
import logging
from datetime import timedelta

from api.domain import clock, events
from api.storage import purge
from api.storage.database import Database

logger = logging.getLogger(__name__)


async def purge_expired(
    *,
    db: Database,
    batch_size: int,
    pause_seconds: float = 0.0,
    notify_window: timedelta = timedelta(hours=24),
) -> int:
    """Delete expired secrets (and receipts past retention); report and return the secrets.

    A receipt past retention whose notification is still being tried, for less than
    `notify_window` (WEBHOOK_RETRY_HOURS), stays until it is delivered or failed.
    """
    purged = await purge.delete_expired(
        db, now=clock.now(), batch_size=batch_size, pause_seconds=pause_seconds
    )
    if purged.secrets:
        events.emit(events.PURGED, purged.secrets)
    if purged.notifications:
        events.emit(events.NOTIFICATION_QUEUED, purged.notifications)
    await purge.delete_old_receipts(
        db,
        now=clock.now(),
        batch_size=batch_size,
        pause_seconds=pause_seconds,
        notify_window=notify_window,
    )
    return purged.secrets


async def purge_forever(
    db: Database,
    *,
    interval_seconds: float,
    batch_size: int,
    pause_seconds: float,
    notify_window: timedelta = timedelta(hours=24),
) -> None:
    """Purge every `interval_seconds` until cancelled; a failed round is retried next time."""
    while True:
        try:
            purged = await purge_expired(
                db=db,
                batch_size=batch_size,
                pause_seconds=pause_seconds,
                notify_window=notify_window,
            )
            if purged:
                logger.info("purged %d expired secrets", purged)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a crash here would stop purging for good
            logger.warning("purge failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_seconds)
