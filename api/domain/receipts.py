"""The sender's side: follow a secret through its receipt key, and revoke it.

A receipt key finds only a receipt and a secret key only a secret: each is looked up by its
own SHA-256 in its own table. A revoke deletes the live secret and closes the receipt in one
transaction; racing a reveal or a burn, exactly one DELETE takes the row, and only its
transaction closes the receipt, so the receipt names the winner.
"""

from dataclasses import dataclass
from datetime import datetime

from api.domain import clock, crypto, events
from api.domain.availability import unavailable_when_the_database_fails
from api.domain.errors import ReceiptNotFound
from api.domain.service import close_receipt
from api.storage import statements, usage
from api.storage.database import Database, Rows
from models import ReceiptStatus


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
    state = ReceiptStatus(status)
    if state is ReceiptStatus.PENDING and expires_at <= now:
        # Expired but not purged yet: the purge will record the same.
        state, closed_at = ReceiptStatus.EXPIRED, expires_at
    return ReceiptView(state, clock.as_utc(created_at), expires_at, closed_at, failed_attempts)


async def _find(db: Database, receipt_key: str, now: datetime) -> Rows:
    if not crypto.is_well_formed_key(receipt_key):
        return ()
    return await db.fetch(statements.FIND_RECEIPT, digest=crypto.lookup_hash(receipt_key), now=now)


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
    receipt_id = rows[0][0]
    async with db.transaction() as transaction:
        deleted = await transaction.fetch(
            statements.DELETE_LIVE_OF_RECEIPT, receipt_id=receipt_id, now=now
        )
        if deleted:
            await close_receipt(transaction, receipt_id, ReceiptStatus.REVOKED)
            await usage.release(transaction, sizes=[size for (size,) in deleted])
    if deleted:
        await db.scrub()
        events.emit(events.REVOKED)
    return _view(await _find(db, receipt_key, now), now)
