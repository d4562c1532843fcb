"""Passphrase attempts: claimed before a check, given back when the check does not finish.

A secret's `failed_attempts` and its receipt's change in the same transactions, so the two
never disagree: a claim adds one to both, a give-back takes one from both, and the step that
takes a secret with the right passphrase takes its attempt back from the receipt as it
closes it (`api.storage.writes.close_receipt`). While a check runs, its attempt is counted.

A claim writes the receipt's count in the claim's own transaction, so a wrong passphrase on a
live secret does no more writes after its check than an unknown key does. On PostgreSQL the
claim also commits without waiting for its WAL flush (`synchronous_commit = off` for that
transaction alone): a claim that found nothing writes nothing and waits for no flush, so
waiting for a found one's would tell, by a millisecond, that the key exists (`python -m
bench.oracle`). A crash can lose only claims made in the last moments before it, which gives
those attempts back; every later step (a reveal, a destruction) commits synchronously, and
its flush carries the claims before it.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from api.storage import statements
from api.storage.database import Database


@dataclass(frozen=True, slots=True)
class Claim:
    """One claimed passphrase check on a live secret."""

    row_id: uuid.UUID
    passphrase_hash: str
    attempts: int  # claimed so far, this one included
    receipt_id: uuid.UUID | None


class AttemptsInFlight(Exception):
    """The secret is live, but every attempt it has left is being checked right now."""


async def claim(db: Database, *, digest: bytes, now: datetime, max_attempts: int) -> Claim | None:
    """Claim one attempt on the live secret found by `digest`; None if there is none.

    Raises `AttemptsInFlight` when the secret is live but has no attempt left to claim: the
    checks holding them may yet be given back, so the answer is "retry", not "not found".
    """
    async with db.transaction() as transaction:
        if db.dialect == "postgresql":
            await transaction.execute(statements.ASYNCHRONOUS_COMMIT)
        rows = await transaction.execute(
            statements.CLAIM_ATTEMPT, digest=digest, now=now, max_attempts=max_attempts
        )
        if not rows:
            if await transaction.execute(statements.LIVE_SECRET, digest=digest, now=now):
                raise AttemptsInFlight
            return None
        claimed = Claim(*rows[0])
        if claimed.receipt_id is not None:
            await transaction.execute(
                statements.COUNT_RECEIPT_ATTEMPTS, receipt_id=claimed.receipt_id, change=1
            )
    return claimed


async def give_back(db: Database, claimed: Claim | None) -> None:
    """Return the attempt of a check that did not finish, on the secret and its receipt."""
    if claimed is None:
        return
    async with db.transaction() as transaction:
        rows = await transaction.execute(statements.REFUND_ATTEMPT, row_id=claimed.row_id)
        if rows and claimed.receipt_id is not None:
            await transaction.execute(
                statements.COUNT_RECEIPT_ATTEMPTS, receipt_id=claimed.receipt_id, change=-1
            )
