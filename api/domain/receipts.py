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
from models import StoredReceiptStatus


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


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """What a receipt tells its sender."""

    status: ReceiptStatus
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    failed_attempts: int


def _view(rows: Rows, now: datetime) -> ReceiptView:
    if not rows:
        raise ReceiptNotFound
    _, status, failed_attempts, created_at, expires_at, closed_at = rows[0]
    expires_at = clock.as_utc(expires_at)
    closed_at = clock.as_utc(closed_at) if closed_at is not None else None
    state = _SHOWN[StoredReceiptStatus(status)]
    if state is ReceiptStatus.PENDING and expires_at <= now:
        # Expired but not purged yet: the purge will record the same.
        state, closed_at = ReceiptStatus.EXPIRED, expires_at
    return ReceiptView(state, clock.as_utc(created_at), expires_at, closed_at, failed_attempts)


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
    if await writes.revoke(db, receipt_id=rows[0][0], now=now):
        await db.scrub()
        events.emit(events.REVOKED)
    return _view(await _find(db, receipt_key, now), now)
