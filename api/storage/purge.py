"""The purge's SQL: expired secrets, and receipts past their retention, deleted in batches.

Each batch of secrets is one transaction that also marks their receipts `expired`, so a
receipt never says `pending` for a secret that is gone, queues the notifications their
senders asked for, and gives their room back to the storage quota. A receipt past its
retention goes with its notification. Concurrent purgers (several workers or instances)
skip each other's rows on PostgreSQL. `api.domain.purge` runs it on a schedule, with the
domain's clock.
"""

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Delete, Table, bindparam, delete, select, update

from api.storage import notifications, usage
from api.storage.database import Database
from api.storage.statements import (
    SIZE,
    notification_columns,
    receipt_columns,
    receipts_table,
    secrets_table,
)
from models import StoredNotificationState, StoredReceiptStatus


def _delete_due(table: Table, due: ColumnElement[datetime], *kept: ColumnElement[bool]) -> Delete:
    """Delete up to `batch_size` rows of `table` whose `due` time is past `now`.

    Rows matching any of `kept` stay. Concurrent purgers (several workers or instances) skip
    each other's rows on PostgreSQL.
    """
    batch = (
        select(table.c.id)
        .where(due <= bindparam("now"), *(~condition for condition in kept))
        .limit(bindparam("batch_size"))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return delete(table).where(table.c.id.in_(batch))


PURGE_SECRETS_BATCH = _delete_due(secrets_table, secrets_table.c.expires_at).returning(
    SIZE, secrets_table.c.receipt_id
)
# The receipts of the secrets a batch deleted: expired, at their expiry. Those whose sender
# asked to be told come back, to queue their notifications.
EXPIRE_RECEIPTS = (
    update(receipts_table)
    .where(
        receipt_columns.id.in_(bindparam("receipt_ids", expanding=True)),
        receipt_columns.status == StoredReceiptStatus.PENDING.value,
    )
    .values(status=StoredReceiptStatus.EXPIRED.value, closed_at=receipt_columns.expires_at)
    # The URL itself, not `IS NOT NULL` (see CLOSE_RECEIPT in `api.storage.statements`).
    .returning(receipt_columns.id, receipt_columns.notify_url)
)
# A receipt whose notification is still being tried stays until it is delivered or failed,
# however short RECEIPT_RETENTION_SECONDS is; but no longer than the retry window, so one
# that nobody sends (notifications switched off) does not keep it for ever.
_NOTIFYING = (
    select(notification_columns.receipt_id)
    .where(
        notification_columns.receipt_id == receipts_table.c.id,
        notification_columns.state == StoredNotificationState.PENDING.value,
        notification_columns.created_at > bindparam("notifying_since"),
    )
    .exists()
)
PURGE_RECEIPTS_BATCH = _delete_due(
    receipts_table, receipt_columns.retain_until, _NOTIFYING
).returning(receipt_columns.id)


@dataclass(frozen=True, slots=True)
class Purged:
    """What a purge of expired secrets did: secrets deleted, notifications queued."""

    secrets: int = 0
    notifications: int = 0


async def delete_expired(
    db: Database, *, now: datetime, batch_size: int, pause_seconds: float = 0.0
) -> Purged:
    """Delete the secrets expired at `now`, in batches of `batch_size`; say what it did.

    `pause_seconds` pass between batches so that a large backlog does not crowd out reveals.
    """
    total = Purged()
    while True:
        batch = await _delete_secrets_batch(db, now=now, batch_size=batch_size)
        total = Purged(total.secrets + batch.secrets, total.notifications + batch.notifications)
        if batch.secrets < batch_size:
            if total.secrets:
                await db.scrub()
            return total
        await asyncio.sleep(pause_seconds)


async def _delete_secrets_batch(db: Database, *, now: datetime, batch_size: int) -> Purged:
    notified: list[uuid.UUID] = []
    async with db.transaction() as transaction:
        rows = await transaction.execute(PURGE_SECRETS_BATCH, now=now, batch_size=batch_size)
        receipt_ids = [receipt_id for _, receipt_id in rows if receipt_id is not None]
        if receipt_ids:
            expired = await transaction.execute(EXPIRE_RECEIPTS, receipt_ids=receipt_ids)
            notified = [receipt_id for receipt_id, url in expired if url is not None]
            await notifications.queue(transaction, notified, now)
        await usage.release(transaction, sizes=[size for size, _ in rows])
    return Purged(len(rows), len(notified))


async def delete_old_receipts(
    db: Database,
    *,
    now: datetime,
    batch_size: int,
    pause_seconds: float = 0.0,
    notify_window: timedelta = timedelta(hours=24),
) -> int:
    """Delete the receipts past their retention at `now`, with their notifications.

    In batches of `batch_size`; returns how many receipts. One whose notification has been
    pending for less than `notify_window` (WEBHOOK_RETRY_HOURS) waits for it.
    """
    total = 0
    while True:
        async with db.transaction() as transaction:
            rows = await transaction.execute(
                PURGE_RECEIPTS_BATCH,
                now=now,
                batch_size=batch_size,
                notifying_since=now - notify_window,
            )
            if rows:
                await transaction.execute(
                    notifications.DELETE_OF_RECEIPTS, receipt_ids=[row[0] for row in rows]
                )
        total += len(rows)
        if len(rows) < batch_size:
            return total
        await asyncio.sleep(pause_seconds)
