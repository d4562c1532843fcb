"""The background task that deletes expired secrets."""

import asyncio
import logging

from api import service
from api.database import Database

logger = logging.getLogger(__name__)


async def purge_forever(db: Database, *, interval_seconds: float, batch_size: int) -> None:
    """Purge expired secrets every `interval_seconds` until cancelled; survive database outages."""
    while True:
        try:
            purged = await service.purge_expired(db=db, batch_size=batch_size)
            if purged:
                logger.info("purged %d expired secrets", purged)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round retries; a crash here would stop purging
            logger.warning("purge failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_seconds)
