"""The sender's side: follow a secret through its receipt key, and revoke it.

A receipt key finds only a receipt and a secret key only a secret: each is looked up by its
own SHA-256 in its own table. A revoke deletes the live secret and closes the receipt in one
transaction (`api.storage.writes`); racing a reveal or a burn, exactly one DELETE takes the
row, and only its transaction closes the receipt, so the receipt names the winner.

`ReceiptStatus` is what both APIs show; the database stores its own values
(`models.StoredReceiptStatus`), mapped here, so renaming either changes only `_SHOWN`.
"""

import enum
from dataclasses import dataclass
from datetime import datetime

from api.domain import clock, crypto, events
from api.domain.errors import ReceiptNotFound
from api.domain.unavailability import unavailable_when_the_database_fails
from api.storage import statements, writes
from api.storage.database import Database, Rows
from models import StoredNotificationState, StoredReceiptStatus


class ReceiptStatus(enum.StrEnum):
    """What became of a secret; it leaves `pending` once and for good."""

    PENDING = "pending"  # stored, not expired
    REVEALED = "revealed"  # read by the recipient
    BURNED = "burned"  # destroyed unread by the recipient
    REVOKED = "revoked"  # destroyed by the sender through the receipt
    DESTROYED = "destroyed"  # too many wrong passphrases
    EXPIRED = "expired"  # its lifetime ran out unread


_SHOWN = {
    StoredReceiptStatus.PENDING: ReceiptStatus.PENDING,
    StoredReceiptStatus.REVEALED: ReceiptStatus.REVEALED,
    StoredReceiptStatus.BURNED: ReceiptStatus.BURNED,
    StoredReceiptStatus.REVOKED: ReceiptStatus.REVOKED,
    StoredReceiptStatus.DESTROYED: ReceiptStatus.DESTROYED,
    StoredReceiptStatus.EXPIRED: ReceiptStatus.EXPIRED,
}


class NotificationStatus(enum.StrEnum):
    """How the notification a sender asked for is going."""

    PENDING = "pending"  # the receipt is still pending, or delivery is still being tried
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # refused for good, or not delivered within WEBHOOK_RETRY_HOURS


_NOTIFICATION_SHOWN = {
    StoredNotificationState.PENDING: NotificationStatus.PENDING,
    StoredNotificationState.DELIVERED: NotificationStatus.DELIVERED,
    StoredNotificationState.FAILED: NotificationStatus.FAILED,
}


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """What a receipt tells its sender.

    `public_id` is null on receipts made before notifications existed; `notify_url` and
    `notification` are null when the sender asked for no notification.
    """

    status: ReceiptStatus
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    failed_attempts: int
    public_id: str | None = None
    notify_url: str | None = None
    notification: NotificationStatus | None = None


def _view(rows: Rows, now: datetime) -> ReceiptView:
    if not rows:
        raise ReceiptNotFound
    (
        _,
        status,
        failed_attempts,
        created_at,
        expires_at,
        closed_at,
        public_id,
        notify_url,
        notification_state,
    ) = rows[0]
    expires_at = clock.as_utc(expires_at)
    closed_at = clock.as_utc(closed_at) if closed_at is not None else None
    state = _SHOWN[StoredReceiptStatus(status)]
    if state is ReceiptStatus.PENDING and expires_at <= now:
        # Expired but not purged yet: the purge will record the same.
        state, closed_at = ReceiptStatus.EXPIRED, expires_at
    notification = None
    if notify_url is not None:
        # Queued when the receipt closes; until then it is pending like the receipt.
        notification = (
            _NOTIFICATION_SHOWN[StoredNotificationState(notification_state)]
            if notification_state is not None
            else NotificationStatus.PENDING
        )
    return ReceiptView(
        state,
        clock.as_utc(created_at),
        expires_at,
        closed_at,
        failed_attempts,
        public_id,
        notify_url,
        notification,
    )


async def _find(db: Database, receipt_key: str, now: datetime) -> Rows:
    if not crypto.is_well_formed_key(receipt_key):
        return ()
    return await db.execute(
        statements.FIND_RECEIPT, digest=crypto.lookup_hash(receipt_key), now=now
    )


@unavailable_when_the_database_fails
async def get_receipt(*, db: Database, receipt_key: str) -> ReceiptView:
    """Return the receipt for `receipt_key`, or raise `ReceiptNotFound`."""
    now = clock.now()
    return _view(await _find(db, receipt_key, now), now)


@unavailable_when_the_database_fails
async def revoke_secret(*, db: Database, receipt_key: str) -> ReceiptView:
    """Destroy the receipt's secret if it is still pending; return the receipt as it is now.

    Idempotent: on a receipt that is no longer pending it changes nothing.
    """
    now = clock.now()
    rows = await _find(db, receipt_key, now)
    if not rows:
        raise ReceiptNotFound
    revoked = await writes.revoke(db, receipt_id=rows[0][0], now=now)
    if revoked is not None:
        await db.scrub()
        events.emit(events.REVOKED)
        if revoked.notified:
            events.emit(events.NOTIFICATION_QUEUED)
    return _view(await _find(db, receipt_key, now), now)
