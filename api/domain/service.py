"""The service layer: create, reveal and burn secrets. Both doors call only this.

Reveal is exactly-once without holding a lock across the slow passphrase check:

1. *Claim an attempt*: one UPDATE bumps `failed_attempts` if the row exists, is live and has
   attempts left, and returns the row. Concurrent guesses each claim a distinct slot, so at
   most `MAX_FAILED_ATTEMPTS` passphrase checks can ever run against one secret.
2. *Verify* the passphrase off the event loop, outside any transaction (a miss verifies
   against a dummy hash, so every failure costs the same).
3. On success, `DELETE … RETURNING` the row: only one caller can delete it, and only that
   caller decrypts and returns the secret. On failure, a secret whose last attempt was
   just used is deleted.

Claiming runs in autocommit, so no transaction is held while argon2 runs. Every step that
deletes a secret records what happened on its receipt in the same transaction (reveal, burn,
destruction by the attempt limit; revoke and expiry in `api.domain.receipts` and the purge),
so the receipt always names the one caller that won the secret; the same transaction gives
the secret's room back to the storage quota (`api.storage.usage`).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag

from api.domain import clock, crypto, events, inputs
from api.domain.admission import Busy
from api.domain.availability import unavailable_when_the_database_fails
from api.domain.creators import Creator
from api.domain.errors import SecretNotFound, StorageQuotaReached, Unauthenticated
from api.domain.hashing import get_hasher
from api.settings import get_settings
from api.storage import cycle, statements, usage
from api.storage.database import Database, Transaction
from models import ReceiptStatus

logger = logging.getLogger(__name__)

# Past capacity a create gives way before a reveal: a reveal completes a cycle whose create
# was already paid for (`api.domain.admission`).
CREATE_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    """What the creator gets back: the key to share, the receipt key to keep, the expiry."""

    secret_key: str
    receipt_key: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Claim:
    row_id: uuid.UUID
    passphrase_hash: str
    attempts: int
    receipt_id: uuid.UUID | None


@unavailable_when_the_database_fails
async def create_secret(
    *,
    db: Database,
    secret: str,
    passphrase: str,
    ttl_seconds: int | None = None,
    creator: Creator | None = None,
) -> CreatedSecret:
    """Store `secret` behind `passphrase`; return its key, its receipt key and its expiry.

    Raises `StorageQuotaReached`, having stored nothing, if the store would go past
    MAX_STORED_BYTES or MAX_LIVE_SECRETS. `creator` (token mode) is counted by name.
    """
    settings = get_settings()
    if settings.create_auth == "token" and creator is None:
        # The doors identify the creator first; this holds if a new door forgets to.
        raise Unauthenticated(presented=False)
    plaintext = inputs.secret_bytes(secret, settings)
    inputs.check_passphrase(passphrase, settings)
    ttl = inputs.ttl(ttl_seconds, settings)

    hasher = get_hasher()
    async with hasher.gate.admitted(share=CREATE_SHARE):
        protected = await hasher.protect(passphrase)
    secret_key, receipt_key = crypto.new_key(), crypto.new_key()
    row_id, receipt_id = uuid.uuid4(), uuid.uuid4()
    now = clock.now()
    expires_at = (now + timedelta(seconds=ttl)).replace(microsecond=0)
    sealed = crypto.seal(
        plaintext,
        secret_key=secret_key,
        key_material=protected.key_material,
        associated_data=row_id.bytes,
    )
    stored = await cycle.store(
        db,
        receipt={
            "id": receipt_id,
            "lookup_hash": crypto.lookup_hash(receipt_key),
            "status": ReceiptStatus.PENDING.value,
            "failed_attempts": 0,
            "created_at": now,
            "expires_at": expires_at,
            "closed_at": None,
            "retain_until": expires_at + timedelta(seconds=settings.receipt_retention_seconds),
        },
        secret={
            "id": row_id,
            "lookup_hash": crypto.lookup_hash(secret_key),
            "ciphertext": sealed,
            "passphrase_hash": protected.record,
            "failed_attempts": 0,
            "created_at": now,
            "expires_at": expires_at,
            "receipt_id": receipt_id,
        },
        max_bytes=settings.max_stored_bytes,
        max_secrets=settings.max_live_secrets,
    )
    if not stored:
        events.emit(events.REFUSED_STORAGE_QUOTA)
        raise StorageQuotaReached
    events.emit(events.CREATED)
    if creator is not None:
        events.emit(events.CREATED_WITH_TOKEN, label=creator.name)
    return CreatedSecret(secret_key=secret_key, receipt_key=receipt_key, expires_at=expires_at)


async def close_receipt(
    transaction: Transaction, receipt_id: uuid.UUID | None, status: ReceiptStatus
) -> None:
    """Record on a secret's receipt (if it has one) why the secret is gone."""
    if receipt_id is not None:
        await transaction.fetch(
            statements.CLOSE_RECEIPT,
            receipt_id=receipt_id,
            status=status.value,
            closed_at=clock.now(),
        )


async def _claim_attempt(db: Database, secret_key: str) -> _Claim | None:
    rows = await db.fetch(
        statements.CLAIM_ATTEMPT,
        digest=crypto.lookup_hash(secret_key),
        now=clock.now(),
        max_attempts=get_settings().max_failed_attempts,
    )
    return _Claim(*rows[0]) if rows else None


async def _wrong_passphrase(db: Database, claim: _Claim) -> None:
    events.emit(events.FAILED_ATTEMPT)
    if claim.attempts < get_settings().max_failed_attempts:
        if claim.receipt_id is not None:
            await db.fetch(statements.COUNT_FAILED_ATTEMPT, receipt_id=claim.receipt_id)
        return
    # The last attempt was just used: the secret goes, and its receipt says why.
    async with db.transaction() as transaction:
        deleted = await transaction.fetch(statements.DELETE, id=claim.row_id)
        await usage.release(transaction, sizes=[size for (size,) in deleted])
        if claim.receipt_id is not None:
            await transaction.fetch(statements.COUNT_FAILED_ATTEMPT, receipt_id=claim.receipt_id)
            if deleted:
                await close_receipt(transaction, claim.receipt_id, ReceiptStatus.DESTROYED)
    if deleted:
        await db.scrub()
        events.emit(events.DESTROYED_BY_ATTEMPT_LIMIT)


async def _check_passphrase(
    *, db: Database, secret_key: str, passphrase: str
) -> tuple[_Claim, bytes]:
    """Spend one attempt on `passphrase`; return the claimed row and its key material."""
    inputs.check_passphrase(passphrase, get_settings())
    hasher = get_hasher()
    gate = hasher.gate
    # Refused before the attempt is claimed when the queue is already too long; the claim
    # itself runs outside the hashing slot, so a slow database does not hold hashing up.
    if gate.would_refuse():
        raise Busy
    claim = await _claim_attempt(db, secret_key) if crypto.is_well_formed_key(secret_key) else None
    try:
        async with gate.admitted():
            key_material = await hasher.unlock(passphrase, claim.passphrase_hash if claim else None)
    except Busy:
        if claim is not None:
            # Refused after all (the wait ran out): give the attempt back, so that a refusal
            # leaves the secret as it was.
            await db.fetch(statements.REFUND_ATTEMPT, row_id=claim.row_id)
        raise
    if key_material is not None and claim is not None:
        return claim, key_material
    if claim is not None:
        await _wrong_passphrase(db, claim)
    raise SecretNotFound


@unavailable_when_the_database_fails
async def reveal_secret(*, db: Database, secret_key: str, passphrase: str) -> str:
    """Return the secret and delete it, or raise `SecretNotFound`. Succeeds at most once."""
    claim, key_material = await _check_passphrase(
        db=db, secret_key=secret_key, passphrase=passphrase
    )
    sealed = await cycle.take_live(
        db, row_id=claim.row_id, receipt_id=claim.receipt_id, now=clock.now()
    )
    if sealed is None:
        raise SecretNotFound
    await db.scrub()
    try:
        plaintext = crypto.open_sealed(
            sealed,
            secret_key=secret_key,
            key_material=key_material,
            associated_data=claim.row_id.bytes,
        )
    except InvalidTag:
        # Only a row altered in the database gets here; it is gone now, like any read secret.
        logger.error("a stored secret failed authentication and was discarded")
        raise SecretNotFound from None
    events.emit(events.REVEALED)
    return plaintext.decode("utf-8")


@unavailable_when_the_database_fails
async def burn_secret(*, db: Database, secret_key: str, passphrase: str) -> None:
    """Destroy the secret unread, or raise `SecretNotFound`."""
    claim, _ = await _check_passphrase(db=db, secret_key=secret_key, passphrase=passphrase)
    async with db.transaction() as transaction:
        deleted = await transaction.fetch(statements.DELETE, id=claim.row_id)
        if deleted:
            await close_receipt(transaction, claim.receipt_id, ReceiptStatus.BURNED)
            await usage.release(transaction, sizes=[size for (size,) in deleted])
    if not deleted:
        raise SecretNotFound
    await db.scrub()
    events.emit(events.BURNED)


@unavailable_when_the_database_fails
async def count_live(*, db: Database) -> int:
    """Return how many secrets are stored and not yet expired."""
    rows = await db.fetch(statements.COUNT_LIVE, now=clock.now())
    return int(rows[0][0])


@unavailable_when_the_database_fails
async def storage_usage(*, db: Database) -> tuple[int, int]:
    """Return (stored ciphertext bytes, stored secrets) as the storage quota counts them."""
    return await usage.totals(db)


@unavailable_when_the_database_fails
async def recount_storage(*, db: Database) -> tuple[int, int]:
    """Set the storage quota's totals from the secrets table; return them (`ots-admin`)."""
    return await usage.recount(db)


@unavailable_when_the_database_fails
async def ping(*, db: Database) -> None:
    """Run the cheapest possible query; raises if the database does not answer."""
    await db.fetch(statements.PING)
