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

Every step is one statement, atomic on its own, so each runs in autocommit: one round trip
to the database, no BEGIN/COMMIT, and no transaction held while argon2 runs.
"""

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ParamSpec, TypeVar

from cryptography.exceptions import InvalidTag

from api.domain import clock, crypto, events, inputs
from api.domain.errors import SecretNotFound, ServiceUnavailable
from api.domain.hashing import get_hasher
from api.settings import get_settings
from api.storage import statements
from api.storage.database import Database, DatabaseUnavailable

logger = logging.getLogger(__name__)

# How long a client is told to wait when the database does not answer.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _unavailable_when_the_database_fails(
    function: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Awaitable[_R]]:
    @functools.wraps(function)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await function(*args, **kwargs)
        except DatabaseUnavailable:
            raise ServiceUnavailable(UNAVAILABLE_RETRY_AFTER_SECONDS) from None

    return wrapper


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    """What the creator gets back: the key to share and when it stops working."""

    secret_key: str
    expires_at: datetime


@_unavailable_when_the_database_fails
async def create_secret(
    *, db: Database, secret: str, passphrase: str, ttl_seconds: int | None = None
) -> CreatedSecret:
    """Store `secret` behind `passphrase` and return its new key and expiry."""
    settings = get_settings()
    plaintext = inputs.secret_bytes(secret, settings)
    inputs.check_passphrase(passphrase, settings)
    ttl = inputs.ttl(ttl_seconds, settings)

    passphrase_hash = await get_hasher().hash(passphrase)
    secret_key = crypto.new_secret_key()
    row_id = uuid.uuid4()
    now = clock.now()
    expires_at = (now + timedelta(seconds=ttl)).replace(microsecond=0)
    await db.fetch(
        statements.INSERT_SECRET,
        id=row_id,
        lookup_hash=crypto.lookup_hash(secret_key),
        ciphertext=crypto.seal(plaintext, secret_key=secret_key, associated_data=row_id.bytes),
        passphrase_hash=passphrase_hash,
        failed_attempts=0,
        created_at=now,
        expires_at=expires_at,
    )
    events.emit(events.CREATED)
    return CreatedSecret(secret_key=secret_key, expires_at=expires_at)


async def _claim_attempt(db: Database, secret_key: str) -> tuple[uuid.UUID, str, int] | None:
    rows = await db.fetch(
        statements.CLAIM_ATTEMPT,
        digest=crypto.lookup_hash(secret_key),
        now=clock.now(),
        max_attempts=get_settings().max_failed_attempts,
    )
    if not rows:
        return None
    row_id, passphrase_hash, failed_attempts = rows[0]
    return row_id, passphrase_hash, failed_attempts


async def _check_passphrase(*, db: Database, secret_key: str, passphrase: str) -> uuid.UUID:
    """Spend one attempt on `passphrase`; return the row id if it matches."""
    settings = get_settings()
    inputs.check_passphrase(passphrase, settings)
    claim = await _claim_attempt(db, secret_key) if crypto.is_well_formed_key(secret_key) else None
    passphrase_hash = claim[1] if claim else None
    if await get_hasher().verify(passphrase, passphrase_hash) and claim is not None:
        return claim[0]
    if claim is not None:
        events.emit(events.FAILED_ATTEMPT)
        last_attempt = claim[2] >= settings.max_failed_attempts
        if last_attempt and await db.fetch(statements.DELETE, id=claim[0]):
            events.emit(events.DESTROYED_BY_ATTEMPT_LIMIT)
    raise SecretNotFound


@_unavailable_when_the_database_fails
async def reveal_secret(*, db: Database, secret_key: str, passphrase: str) -> str:
    """Return the secret and delete it, or raise `SecretNotFound`. Succeeds at most once."""
    row_id = await _check_passphrase(db=db, secret_key=secret_key, passphrase=passphrase)
    rows = await db.fetch(statements.DELETE_LIVE, id=row_id, now=clock.now())
    if not rows:
        raise SecretNotFound
    sealed: bytes = rows[0][0]
    try:
        plaintext = crypto.open_sealed(sealed, secret_key=secret_key, associated_data=row_id.bytes)
    except InvalidTag:
        # Only a row altered in the database gets here; it is gone now, like any read secret.
        logger.error("a stored secret failed authentication and was discarded")
        raise SecretNotFound from None
    events.emit(events.REVEALED)
    return plaintext.decode("utf-8")


@_unavailable_when_the_database_fails
async def burn_secret(*, db: Database, secret_key: str, passphrase: str) -> None:
    """Destroy the secret unread, or raise `SecretNotFound`."""
    row_id = await _check_passphrase(db=db, secret_key=secret_key, passphrase=passphrase)
    if not await db.fetch(statements.DELETE, id=row_id):
        raise SecretNotFound
    events.emit(events.BURNED)


@_unavailable_when_the_database_fails
async def count_live(*, db: Database) -> int:
    """Return how many secrets are stored and not yet expired."""
    rows = await db.fetch(statements.COUNT_LIVE, now=clock.now())
    return int(rows[0][0])


@_unavailable_when_the_database_fails
async def ping(*, db: Database) -> None:
    """Run the cheapest possible query; raises if the database does not answer."""
    await db.fetch(statements.PING)
