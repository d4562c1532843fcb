"""The service layer: create, reveal and burn secrets. Both transports call only this.

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

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography.exceptions import InvalidTag
from sqlalchemy import (
    Table,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)

from api import crypto, telemetry
from api.database import Database
from api.errors import InvalidInput, SecretNotFound
from api.hashing import get_hasher
from api.settings import Settings, get_settings
from models import Secret

logger = logging.getLogger(__name__)


# Core column expressions keep the SQL explicit and typed. The statements are built once, with
# bound parameters, so that each call only sends them.
secrets_table: Table = Secret.__table__  # type: ignore[attr-defined]
columns = secrets_table.c

# Every column is given a value, so the INSERT names them all.
_INSERT = insert(secrets_table)
_CLAIM_ATTEMPT = (
    update(secrets_table)
    .where(
        columns.lookup_hash == bindparam("digest"),
        columns.expires_at > bindparam("now"),
        columns.failed_attempts < bindparam("max_attempts"),
    )
    .values(failed_attempts=columns.failed_attempts + 1)
    .returning(columns.id, columns.passphrase_hash, columns.failed_attempts)
)
_DELETE_LIVE = (
    delete(secrets_table)
    .where(columns.id == bindparam("id"), columns.expires_at > bindparam("now"))
    .returning(columns.ciphertext)
)
_DELETE = delete(secrets_table).where(columns.id == bindparam("id")).returning(columns.id)
_PURGE_BATCH = (
    delete(secrets_table)
    .where(
        columns.id.in_(
            select(columns.id)
            .where(columns.expires_at <= bindparam("now"))
            .limit(bindparam("batch_size"))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .returning(columns.id)
)
_COUNT_LIVE = (
    select(func.count()).select_from(secrets_table).where(columns.expires_at > bindparam("now"))
)
_PING = select(literal(1))


@dataclass(frozen=True, slots=True)
class CreatedSecret:
    """What the creator gets back: the key to share and when it stops working."""

    secret_key: str
    expires_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def _validate_passphrase(passphrase: str, settings: Settings) -> None:
    if not passphrase:
        raise InvalidInput("passphrase", "passphrase must not be empty")
    if len(passphrase) > settings.max_passphrase_length:
        raise InvalidInput(
            "passphrase",
            f"passphrase must be at most {settings.max_passphrase_length} characters",
        )


def _encode_secret(secret: str, settings: Settings) -> bytes:
    try:
        encoded = secret.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("secret", "secret must be valid Unicode text") from None
    if not encoded:
        raise InvalidInput("secret", "secret must not be empty")
    if len(encoded) > settings.max_secret_bytes:
        raise InvalidInput(
            "secret", f"secret must be at most {settings.max_secret_bytes} bytes of UTF-8"
        )
    return encoded


def _resolve_ttl(ttl_seconds: int | None, settings: Settings) -> int:
    if ttl_seconds is None:
        return settings.default_ttl_seconds
    if not settings.min_ttl_seconds <= ttl_seconds <= settings.max_ttl_seconds:
        raise InvalidInput(
            "ttl_seconds",
            f"ttl_seconds must be between {settings.min_ttl_seconds} "
            f"and {settings.max_ttl_seconds}",
        )
    return ttl_seconds


async def create_secret(
    *, db: Database, secret: str, passphrase: str, ttl_seconds: int | None = None
) -> CreatedSecret:
    """Store `secret` behind `passphrase` and return its new key and expiry."""
    settings = get_settings()
    plaintext = _encode_secret(secret, settings)
    _validate_passphrase(passphrase, settings)
    ttl = _resolve_ttl(ttl_seconds, settings)

    passphrase_hash = await get_hasher().hash(passphrase)
    secret_key = crypto.new_secret_key()
    row_id = uuid.uuid4()
    now = _now()
    expires_at = (now + timedelta(seconds=ttl)).replace(microsecond=0)
    await db.fetch(
        _INSERT,
        id=row_id,
        lookup_hash=crypto.lookup_hash(secret_key),
        ciphertext=crypto.seal(plaintext, secret_key=secret_key, associated_data=row_id.bytes),
        passphrase_hash=passphrase_hash,
        failed_attempts=0,
        created_at=now,
        expires_at=expires_at,
    )
    telemetry.emit(telemetry.CREATED)
    return CreatedSecret(secret_key=secret_key, expires_at=expires_at)


async def _claim_attempt(db: Database, secret_key: str) -> tuple[uuid.UUID, str, int] | None:
    rows = await db.fetch(
        _CLAIM_ATTEMPT,
        digest=crypto.lookup_hash(secret_key),
        now=_now(),
        max_attempts=get_settings().max_failed_attempts,
    )
    if not rows:
        return None
    row_id, passphrase_hash, failed_attempts = rows[0]
    return row_id, passphrase_hash, failed_attempts


async def _check_passphrase(*, db: Database, secret_key: str, passphrase: str) -> uuid.UUID:
    """Spend one attempt on `passphrase`; return the row id if it matches."""
    settings = get_settings()
    _validate_passphrase(passphrase, settings)
    claim = await _claim_attempt(db, secret_key) if crypto.is_well_formed_key(secret_key) else None
    passphrase_hash = claim[1] if claim else None
    if await get_hasher().verify(passphrase, passphrase_hash) and claim is not None:
        return claim[0]
    if claim is not None:
        telemetry.emit(telemetry.FAILED_ATTEMPT)
        last_attempt = claim[2] >= settings.max_failed_attempts
        if last_attempt and await db.fetch(_DELETE, id=claim[0]):
            telemetry.emit(telemetry.DESTROYED_BY_ATTEMPT_LIMIT)
    raise SecretNotFound


async def reveal_secret(*, db: Database, secret_key: str, passphrase: str) -> str:
    """Return the secret and delete it, or raise `SecretNotFound`. Succeeds at most once."""
    row_id = await _check_passphrase(db=db, secret_key=secret_key, passphrase=passphrase)
    rows = await db.fetch(_DELETE_LIVE, id=row_id, now=_now())
    if not rows:
        raise SecretNotFound
    sealed: bytes = rows[0][0]
    try:
        plaintext = crypto.open_sealed(sealed, secret_key=secret_key, associated_data=row_id.bytes)
    except InvalidTag:
        # Only a row altered in the database gets here; it is gone now, like any read secret.
        logger.error("a stored secret failed authentication and was discarded")
        raise SecretNotFound from None
    telemetry.emit(telemetry.REVEALED)
    return plaintext.decode("utf-8")


async def burn_secret(*, db: Database, secret_key: str, passphrase: str) -> None:
    """Destroy the secret unread, or raise `SecretNotFound`."""
    row_id = await _check_passphrase(db=db, secret_key=secret_key, passphrase=passphrase)
    if not await db.fetch(_DELETE, id=row_id):
        raise SecretNotFound
    telemetry.emit(telemetry.BURNED)


async def purge_expired(*, db: Database, batch_size: int) -> int:
    """Delete expired secrets in batches of `batch_size`; return how many were deleted.

    Each batch is its own statement; PURGE_PAUSE_SECONDS passes between batches so that a
    large backlog does not crowd out reveals. On PostgreSQL, concurrent purgers skip each
    other's rows.
    """
    pause = get_settings().purge_pause_seconds
    total = 0
    while True:
        deleted = len(await db.fetch(_PURGE_BATCH, now=_now(), batch_size=batch_size))
        total += deleted
        if deleted < batch_size:
            if total:
                telemetry.emit(telemetry.PURGED, total)
            return total
        await asyncio.sleep(pause)


async def count_live(*, db: Database) -> int:
    """Return how many secrets are stored and not yet expired."""
    rows = await db.fetch(_COUNT_LIVE, now=_now())
    return int(rows[0][0])


async def ping(*, db: Database) -> None:
    """Run the cheapest possible query; raises if the database does not answer."""
    await db.fetch(_PING)
