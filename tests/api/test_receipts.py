"""Sender receipts: every status transition with its `closed_at`, on both doors and databases.

The races (reveal, burn and revoke of one secret at once, many rounds) run here in-process;
`tests/system/test_receipt_races.py` runs them across processes against real uvicorn workers.
"""

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from api.domain import crypto, receipts, service
from api.domain.errors import ReceiptNotFound, SecretNotFound
from api.domain.hashing import PassphraseHasher
from api.domain.purge import purge_expired
from api.domain.receipts import ReceiptStatus
from api.settings import Settings
from api.storage.database import Database
from api.storage.statements import receipt_columns, receipts_table, secret_columns, secrets_table
from tests.doors import PASSPHRASE, SECRET, Door, GraphQL, Outcome, Rest


@pytest.fixture(params=["rest", "graphql"])
def door(request: pytest.FixtureRequest, client: httpx.AsyncClient) -> Door:
    """Each door in turn, over the same in-process client."""
    return Rest(client) if request.param == "rest" else GraphQL(client)


async def stored(door: Door, ttl: int | None = None) -> tuple[str, str]:
    arguments: dict[str, Any] = {"secret": SECRET, "passphrase": PASSPHRASE}
    if ttl is not None:
        arguments["ttl_seconds"] = ttl
    created = await door.create(**arguments)
    assert created.kind == "created"
    assert created.value is not None
    assert created.receipt_key is not None
    return created.value, created.receipt_key


def parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def fields(outcome: Outcome) -> tuple[datetime | None, datetime | None, datetime | None, int]:
    assert outcome.receipt is not None, outcome
    created_at, expires_at, closed_at, failed_attempts = outcome.receipt
    return parse(created_at), parse(expires_at), parse(closed_at), failed_attempts


def recent(moment: datetime | None) -> bool:
    now = datetime.now(UTC).replace(tzinfo=None)
    return moment is not None and now - timedelta(seconds=30) <= moment <= now + timedelta(
        seconds=1
    )


async def test_a_pending_receipt(door: Door) -> None:
    _, receipt_key = await stored(door, ttl=3600)
    receipt = await door.receipt(receipt_key)
    assert receipt.value == "pending"
    created_at, expires_at, closed_at, failed = fields(receipt)
    assert recent(created_at)
    assert created_at is not None
    assert expires_at is not None
    assert abs((expires_at - created_at).total_seconds() - 3600) <= 1
    assert closed_at is None
    assert failed == 0


@pytest.mark.parametrize("action", ["revealed", "burned", "revoked"])
async def test_each_ending_closes_the_receipt_once(door: Door, action: str) -> None:
    key, receipt_key = await stored(door)
    if action == "revealed":
        assert (await door.reveal(key, PASSPHRASE)).value == SECRET
    elif action == "burned":
        assert (await door.burn(key, PASSPHRASE)).kind == "burned"
    else:
        assert (await door.revoke(receipt_key)).value == "revoked"
    receipt = await door.receipt(receipt_key)
    assert receipt.value == action
    closed_at = fields(receipt)[2]
    assert recent(closed_at)
    # Nothing changes it afterwards: the secret is gone for everyone.
    again = await door.revoke(receipt_key)
    assert again == receipt
    assert (await door.reveal(key, PASSPHRASE)).kind == "not_found"


async def test_wrong_passphrases_are_counted_then_destroy(door: Door, configure: Any) -> None:
    configure(MAX_FAILED_ATTEMPTS="3")
    key, receipt_key = await stored(door)
    for expected in (1, 2):
        assert (await door.reveal(key, "wrong")).kind == "not_found"
        receipt = await door.receipt(receipt_key)
        assert receipt.value == "pending"
        assert fields(receipt)[3] == expected
    assert (await door.burn(key, "wrong")).kind == "not_found"
    receipt = await door.receipt(receipt_key)
    assert receipt.value == "destroyed"
    assert fields(receipt)[3] == 3
    assert recent(fields(receipt)[2])


async def _expire(db: Database, key: str, *, retention_passed: bool = False) -> None:
    past = datetime.now(UTC) - timedelta(seconds=10)
    await db.execute(
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(key))
        .values(expires_at=past)
    )
    receipt_id = (
        await db.execute(
            select(secret_columns.receipt_id).where(
                secret_columns.lookup_hash == crypto.lookup_hash(key)
            )
        )
    )[0][0]
    await db.execute(
        update(receipts_table)
        .where(receipt_columns.id == receipt_id)
        .values(expires_at=past, retain_until=past if retention_passed else past + timedelta(1))
    )


async def test_expiry_then_purge_then_retention(door: Door, db: Database) -> None:
    key, receipt_key = await stored(door)
    await _expire(db, key)
    before_purge = await door.receipt(receipt_key)
    assert before_purge.value == "expired"
    _, expires_at, closed_at, _ = fields(before_purge)
    assert closed_at == expires_at
    await purge_expired(db=db, batch_size=100)
    assert await door.receipt(receipt_key) == before_purge  # recorded by the purge, the same
    rows = await db.execute(
        select(receipt_columns.status, receipt_columns.closed_at, receipt_columns.expires_at).where(
            receipt_columns.lookup_hash == crypto.lookup_hash(receipt_key)
        )
    )
    status, closed_at, expires_at_stored = rows[0]
    assert status == "expired"  # written by the purge, in the batch that deleted the secret
    assert closed_at == expires_at_stored
    assert (await door.revoke(receipt_key)).value == "expired"
    # Once its retention has passed, the receipt is gone too.
    key, receipt_key = await stored(door)
    await _expire(db, key, retention_passed=True)
    assert (await door.receipt(receipt_key)).kind == "not_found"
    await purge_expired(db=db, batch_size=100)
    digest = crypto.lookup_hash(receipt_key)
    assert not await db.execute(
        select(receipt_columns.id).where(receipt_columns.lookup_hash == digest)
    )


async def test_receipts_retain_for_the_configured_time(
    db: Database, configure: Any, settings: Settings, hasher: PassphraseHasher
) -> None:
    configure(RECEIPT_RETENTION_SECONDS="120")
    created = await service.create_secret(
        db=db,
        settings=settings,
        hasher=hasher,
        secret=SECRET,
        passphrase=PASSPHRASE,
        ttl_seconds=60,
    )
    rows = await db.execute(
        select(receipt_columns.expires_at, receipt_columns.retain_until).where(
            receipt_columns.lookup_hash == crypto.lookup_hash(created.receipt_key)
        )
    )
    expires_at, retain_until = rows[0]
    assert (retain_until - expires_at).total_seconds() == 120


async def test_receipts_hold_no_ciphertext_and_no_key(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=SECRET, passphrase=PASSPHRASE
    )
    assert set(receipts_table.c.keys()) == {
        "id",
        "lookup_hash",
        "status",
        "failed_attempts",
        "created_at",
        "expires_at",
        "closed_at",
        "retain_until",
        # A random id, the sender's own URL and which token created it: nothing secret.
        "public_id",
        "notify_url",
        "creator_token_id",
    }
    rows = await db.execute(select(receipts_table))
    stored_values = repr(rows)
    for canary in (SECRET, PASSPHRASE, created.secret_key, created.receipt_key):
        assert canary not in stored_values
    assert crypto.lookup_hash(created.secret_key).hex() not in rows[-1][1].hex()


async def test_old_secrets_without_a_receipt_still_reveal(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=SECRET, passphrase=PASSPHRASE
    )
    # As a secret stored before receipts existed: no receipt at all.
    await db.execute(
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(created.secret_key))
        .values(receipt_id=None)
    )
    assert (
        await service.reveal_secret(
            db=db,
            settings=settings,
            hasher=hasher,
            secret_key=created.secret_key,
            passphrase=PASSPHRASE,
        )
        == SECRET
    )


ROUNDS = 30


async def _reveal(
    db: Database, settings: Settings, hasher: PassphraseHasher, created: service.CreatedSecret
) -> str | None:
    try:
        await service.reveal_secret(
            db=db,
            settings=settings,
            hasher=hasher,
            secret_key=created.secret_key,
            passphrase=PASSPHRASE,
        )
    except SecretNotFound:
        return None
    return "revealed"


async def _rival(
    db: Database,
    settings: Settings,
    hasher: PassphraseHasher,
    created: service.CreatedSecret,
    rival: str,
) -> str | None:
    if rival == "burn":
        try:
            await service.burn_secret(
                db=db,
                settings=settings,
                hasher=hasher,
                secret_key=created.secret_key,
                passphrase=PASSPHRASE,
            )
        except SecretNotFound:
            return None
        return "burned"
    after = await receipts.revoke_secret(db=db, receipt_key=created.receipt_key)
    # Only the winning revoke makes a receipt `revoked`.
    return "revoked" if after.status is ReceiptStatus.REVOKED else None


@pytest.mark.parametrize("rival", ["revoke", "burn"])
async def test_reveal_racing_a_rival_has_one_winner_named_by_the_receipt(
    db: Database, rival: str, settings: Settings, hasher: PassphraseHasher
) -> None:
    """In-process: two reveals and a rival start together, many rounds."""
    winners: dict[str, int] = {}
    for _ in range(ROUNDS):
        created = await service.create_secret(
            db=db, settings=settings, hasher=hasher, secret=SECRET, passphrase=PASSPHRASE
        )
        racers = [
            _reveal(db, settings, hasher, created),
            _reveal(db, settings, hasher, created),
            _rival(db, settings, hasher, created, rival),
        ]
        random.shuffle(racers)  # whoever starts first has no edge across rounds
        results = await asyncio.gather(*racers)
        won = [result for result in results if result is not None]
        assert len(won) == 1, results
        receipt = await receipts.get_receipt(db=db, receipt_key=created.receipt_key)
        assert receipt.status.value == won[0]
        winners[won[0]] = winners.get(won[0], 0) + 1
    assert sum(winners.values()) == ROUNDS
    print(f"winners [{rival}]: {winners}")


async def test_unknown_receipt_keys(db: Database) -> None:
    for key in (uuid.uuid4().hex, "nope", "A" * 32, ""):
        with pytest.raises(ReceiptNotFound):
            await receipts.get_receipt(db=db, receipt_key=key)
        with pytest.raises(ReceiptNotFound):
            await receipts.revoke_secret(db=db, receipt_key=key)
