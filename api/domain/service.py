"""The service layer: create, reveal and burn secrets. Both doors call only this.

The callers pass what the application was built with: its settings (the limits) and its
passphrase hasher (`api.app` builds both once).

Reveal is exactly-once without holding a lock across the slow passphrase check:

1. *Claim an attempt* (`api.storage.attempts`): one transaction bumps `failed_attempts` on
   the secret and on its receipt if the secret is live and has attempts left. Concurrent
   guesses each claim a distinct slot, so at most `MAX_FAILED_ATTEMPTS` passphrase checks can
   ever run against one secret. A live secret whose last attempts are all being checked
   answers "busy, retry", not "not found".
2. *Verify* the passphrase off the event loop, outside any transaction (a miss verifies
   against a dummy hash, so every failure costs the same).
3. On success, `DELETE … RETURNING` the row: only one caller can delete it, and only that
   caller decrypts and returns the secret. On failure the attempt stays counted (it already
   is, on both rows), and a secret whose last attempt was just used is deleted.

A client that hangs up cancels its request (`api.http.disconnect`). A check that did not
finish gives its attempt back; once it has finished, its outcome is written to the end
(`api.domain.cancellation`). Every step that deletes a secret records what happened on its
receipt in the same transaction (`api.storage.writes`: reveal, burn, destruction by the
attempt limit, revoke; expiry in `api.storage.purge`), so the receipt always names the one
caller that won the secret; the same transaction gives the secret's room back to the storage
quota (`api.storage.usage`).
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidTag

from api.domain import clock, crypto, events, inputs, notifications
from api.domain.admission import Busy
from api.domain.cancellation import run_to_end
from api.domain.creators import Creator
from api.domain.errors import SecretNotFound, StorageQuotaReached, Unauthenticated
from api.domain.hashing import PassphraseHasher
from api.domain.unavailability import unavailable_when_the_database_fails
from api.settings import Settings
from api.storage import attempts, statements, usage, writes
from api.storage.attempts import Claim
from api.storage.database import Database

logger = logging.getLogger(__name__)

# Past capacity a create gives way before a reveal: a reveal completes a cycle whose create
# was already paid for (`api.domain.admission`).
CREATE_SHARE = 0.75


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    """What the creator gets back: the key to share, the receipt key to keep, the expiry.

    And the receipt's public id, which its notification names.
    """

    secret_key: str
    receipt_key: str
    expires_at: datetime
    public_id: str


@unavailable_when_the_database_fails
async def create_secret(
    *,
    db: Database,
    settings: Settings,
    hasher: PassphraseHasher,
    secret: str,
    passphrase: str,
    ttl_seconds: int | None = None,
    creator: Creator | None = None,
    notify_url: str | None = None,
) -> CreatedSecret:
    """Store `secret` behind `passphrase`; return its key, its receipt key and its expiry.

    Raises `StorageQuotaReached`, having stored nothing, if the store would go past
    MAX_STORED_BYTES or MAX_LIVE_SECRETS. `creator` (token mode) is counted by name.
    `notify_url` is told once when the receipt closes (`api.domain.notifications`).
    """
    if settings.create_auth == "token" and creator is None:
        # The doors identify the creator first; this holds if a new door forgets to.
        raise Unauthenticated(presented=False)
    plaintext = inputs.secret_bytes(secret, settings)
    inputs.check_passphrase(passphrase, settings)
    ttl = inputs.ttl(ttl_seconds, settings)
    if notify_url is not None:  # the policy only for a create that asks: not on every create
        notify_url = inputs.notify_url(notify_url, notifications.policy(settings))

    async with hasher.gate.admitted(share=CREATE_SHARE):
        protected = await hasher.protect(passphrase)
    secret_key, receipt_key = crypto.new_key(), crypto.new_key()
    public_id = crypto.new_public_id()
    row_id, receipt_id = uuid.uuid4(), uuid.uuid4()
    now = clock.now()
    expires_at = (now + timedelta(seconds=ttl)).replace(microsecond=0)
    sealed = crypto.seal(
        plaintext,
        secret_key=secret_key,
        key_material=protected.key_material,
        associated_data=row_id.bytes,
    )
    stored = await writes.store(
        db,
        receipt={
            "id": receipt_id,
            "lookup_hash": crypto.lookup_hash(receipt_key),
            "created_at": now,
            "expires_at": expires_at,
            "retain_until": expires_at + timedelta(seconds=settings.receipt_retention_seconds),
            "public_id": public_id,
            "notify_url": notify_url,
            "creator_token_id": creator.id if creator is not None else None,
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
    return CreatedSecret(
        secret_key=secret_key, receipt_key=receipt_key, expires_at=expires_at, public_id=public_id
    )


def _ended(ended: writes.Ended, event: str) -> None:
    events.emit(event)
    if ended.notified:
        events.emit(events.NOTIFICATION_QUEUED)


async def _destroy(db: Database, claim: Claim) -> None:
    # The last attempt was just used: the secret goes, and its receipt says why.
    ended = await writes.destroy(
        db, row_id=claim.row_id, receipt_id=claim.receipt_id, now=clock.now()
    )
    if ended is not None:
        await db.scrub()
        _ended(ended, events.DESTROYED_BY_ATTEMPT_LIMIT)


async def _claim(db: Database, secret_key: str, max_attempts: int) -> Claim | None:
    if not crypto.is_well_formed_key(secret_key):
        return None
    try:
        return await attempts.claim(
            db,
            digest=crypto.lookup_hash(secret_key),
            now=clock.now(),
            max_attempts=max_attempts,
        )
    except attempts.AttemptsInFlight:
        # Not "not found": the checks in flight may give their attempts back.
        raise Busy from None


async def _check_passphrase(
    *, db: Database, settings: Settings, hasher: PassphraseHasher, secret_key: str, passphrase: str
) -> tuple[Claim, bytes]:
    """Spend one attempt on `passphrase`; return the claimed row and its key material.

    A hang-up (cancellation) at any point leaves the secret as if the attempt was never made,
    or, once the passphrase is known to be wrong, as a counted failure: a claimed attempt is
    given back unless its check finished (`api.domain.cancellation`).
    """
    inputs.check_passphrase(passphrase, settings)
    gate = hasher.gate
    # Refused before the attempt is claimed when the queue is already too long; the claim
    # itself runs outside the hashing slot, so a slow database does not hold hashing up.
    if gate.would_refuse():
        raise Busy
    claiming = _claim(db, secret_key, settings.max_failed_attempts)
    claim = await run_to_end(claiming, undo=lambda made: attempts.give_back(db, made))
    try:
        async with gate.admitted():
            key_material = await hasher.unlock(passphrase, claim.passphrase_hash if claim else None)
    except BaseException:
        # Refused after all (the wait ran out), or the client hung up: the check did not
        # finish, so the attempt goes back and the secret stays as it was.
        await run_to_end(attempts.give_back(db, claim))
        raise
    if claim is None:
        raise SecretNotFound
    if key_material is None:
        events.emit(events.FAILED_ATTEMPT)
        if claim.attempts >= settings.max_failed_attempts:
            await run_to_end(_destroy(db, claim))
        raise SecretNotFound
    return claim, key_material


@unavailable_when_the_database_fails
async def reveal_secret(
    *, db: Database, settings: Settings, hasher: PassphraseHasher, secret_key: str, passphrase: str
) -> str:
    """Return the secret and delete it, or raise `SecretNotFound`. Succeeds at most once."""
    claim, key_material = await _check_passphrase(
        db=db, settings=settings, hasher=hasher, secret_key=secret_key, passphrase=passphrase
    )
    # From here the secret is the caller's: a hang-up now cannot leave it half taken.
    taken = await run_to_end(
        writes.take(db, row_id=claim.row_id, receipt_id=claim.receipt_id, now=clock.now())
    )
    if taken is None or taken.ciphertext is None:
        raise SecretNotFound
    await db.scrub()
    try:
        plaintext = crypto.open_sealed(
            taken.ciphertext,
            secret_key=secret_key,
            key_material=key_material,
            associated_data=claim.row_id.bytes,
        )
    except InvalidTag:
        # Only a row altered in the database gets here; it is gone now, like any read secret.
        logger.error("a stored secret failed authentication and was discarded")
        if taken.notified:
            events.emit(events.NOTIFICATION_QUEUED)
        raise SecretNotFound from None
    _ended(taken, events.REVEALED)
    return plaintext.decode("utf-8")


@unavailable_when_the_database_fails
async def burn_secret(
    *, db: Database, settings: Settings, hasher: PassphraseHasher, secret_key: str, passphrase: str
) -> None:
    """Destroy the secret unread, or raise `SecretNotFound`."""
    claim, _ = await _check_passphrase(
        db=db, settings=settings, hasher=hasher, secret_key=secret_key, passphrase=passphrase
    )
    burning = writes.burn(db, row_id=claim.row_id, receipt_id=claim.receipt_id, now=clock.now())
    burned = await run_to_end(burning)
    if burned is None:
        raise SecretNotFound
    await db.scrub()
    _ended(burned, events.BURNED)


@unavailable_when_the_database_fails
async def count_live(*, db: Database) -> int:
    """Return how many secrets are stored and not yet expired."""
    rows = await db.execute(statements.COUNT_LIVE, now=clock.now())
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
    await db.execute(statements.PING)
