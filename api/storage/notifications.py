"""The notifications outbox's SQL: queue with the closing write, claim what is due, record.

- `queue` runs inside the transaction that closes receipts (`api.storage.writes`, the
  purge), so a notification exists exactly when its receipt has left `pending`.
- `claim_due` takes a batch of due notifications for one sender: it counts the attempt and
  moves `next_attempt_at` to the end of a lease in one UPDATE, so another sender (another
  worker or instance) does not take them meanwhile; PostgreSQL's `SKIP LOCKED` keeps
  concurrent claims off each other's rows, SQLite's single writer does the same. A sender
  that dies mid-delivery only delays its batch until the lease ends.
- `record` writes how a batch's attempts went (delivered, due again later, or failed),
  all in one round trip.
- The purge removes a receipt's notification with the receipt (`api.storage.purge`), once it
  is delivered or failed: a receipt whose notification is pending waits for it.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, delete, func, insert, select, update

from api.storage.database import Database, Transaction
from api.storage.statements import (
    notification_columns,
    notifications_table,
    receipt_columns,
    receipts_table,
    token_columns,
    tokens_table,
)
from models import StoredNotificationState

INSERT = insert(notifications_table)
_PENDING = StoredNotificationState.PENDING.value
CLAIM_DUE = (
    update(notifications_table)
    .where(
        notification_columns.receipt_id.in_(
            select(notification_columns.receipt_id)
            .where(
                notification_columns.state == _PENDING,
                notification_columns.next_attempt_at <= bindparam("now"),
            )
            .order_by(notification_columns.next_attempt_at)
            .limit(bindparam("batch_size"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        ),
        # Checked again on the row itself: a claim that raced this one has moved it on.
        notification_columns.state == _PENDING,
        notification_columns.next_attempt_at <= bindparam("now"),
    )
    .values(
        attempts=notification_columns.attempts + 1,
        next_attempt_at=bindparam("lease_until"),
    )
    .returning(
        notification_columns.receipt_id,
        notification_columns.attempts,
        notification_columns.created_at,
    )
)
# What a claimed notification says and where it goes, read from its receipt.
TO_SEND = (
    select(
        receipt_columns.id,
        receipt_columns.notify_url,
        receipt_columns.public_id,
        receipt_columns.status,
        receipt_columns.closed_at,
        receipt_columns.failed_attempts,
        receipt_columns.creator_token_id,
        token_columns.signing_generation,
    )
    .select_from(
        receipts_table.outerjoin(tokens_table, token_columns.id == receipt_columns.creator_token_id)
    )
    .where(receipt_columns.id.in_(bindparam("receipt_ids", expanding=True)))
)
# Bound names differ from the columns': SQLAlchemy keeps those for the SET clause. Only the
# sender of the latest attempt records it: one whose lease ran out finds the row moved on.
RECORD = (
    update(notifications_table)
    .where(
        notification_columns.receipt_id == bindparam("claimed_id"),
        notification_columns.attempts == bindparam("claimed_attempt"),
        notification_columns.state == _PENDING,
    )
    .values(
        state=bindparam("new_state"),
        next_attempt_at=bindparam("due_at"),
        finished_at=bindparam("done_at"),
        last_error=bindparam("why"),
    )
)
OLDEST_PENDING = select(func.min(notification_columns.created_at)).where(
    notification_columns.state == _PENDING
)
DELETE_OF_RECEIPTS = delete(notifications_table).where(
    notification_columns.receipt_id.in_(bindparam("receipt_ids", expanding=True))
)


@dataclass(frozen=True, slots=True)
class Due:
    """A claimed notification, with what its receipt says, ready to be sent."""

    receipt_id: uuid.UUID
    attempt: int  # this one, counted from 1
    created_at: datetime  # when the receipt closed: the retry window starts here
    url: str
    public_id: str
    status: str
    closed_at: datetime
    failed_attempts: int
    creator_token_id: uuid.UUID | None
    signing_generation: int | None


async def queue(transaction: Transaction, receipt_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Queue one notification for each of `receipt_ids`, due at once, in `transaction`."""
    for receipt_id in receipt_ids:
        await transaction.execute(
            INSERT,
            receipt_id=receipt_id,
            state=_PENDING,
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            finished_at=None,
            last_error=None,
        )


async def claim_due(
    db: Database, *, now: datetime, lease_until: datetime, batch_size: int
) -> list[Due]:
    """Claim up to `batch_size` notifications due at `now`, leased until `lease_until`."""
    async with db.transaction() as transaction:
        claimed = await transaction.execute(
            CLAIM_DUE, now=now, lease_until=lease_until, batch_size=batch_size
        )
        if not claimed:
            return []
        receipts = {
            row[0]: row[1:]
            for row in await transaction.execute(
                TO_SEND, receipt_ids=[receipt_id for receipt_id, _, _ in claimed]
            )
        }
    return [
        Due(receipt_id, attempt, created_at, *receipts[receipt_id])
        for receipt_id, attempt, created_at in claimed
        if receipt_id in receipts
    ]


@dataclass(frozen=True, slots=True)
class Attempted:
    """How attempt `attempt` of a notification went: `state`, when due again, why it failed."""

    receipt_id: uuid.UUID
    attempt: int
    state: StoredNotificationState
    next_attempt_at: datetime
    finished_at: datetime | None
    last_error: str | None


async def record(db: Database, attempts: Sequence[Attempted]) -> None:
    """Record how each of `attempts` went, all in one round trip.

    Nothing changes for a notification that a later attempt has claimed meanwhile.
    """
    if not attempts:
        return
    await db.execute_many(
        RECORD,
        [
            {
                "claimed_id": attempted.receipt_id,
                "claimed_attempt": attempted.attempt,
                "new_state": attempted.state.value,
                "due_at": attempted.next_attempt_at,
                "done_at": attempted.finished_at,
                "why": attempted.last_error,
            }
            for attempted in attempts
        ],
    )


async def oldest_pending(db: Database) -> datetime | None:
    """When the oldest notification not yet delivered (nor failed) was queued."""
    rows = await db.execute(OLDEST_PENDING)
    value: datetime | None = rows[0][0] if rows else None
    return value
