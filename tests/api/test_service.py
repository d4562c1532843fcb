"""Service-layer semantics on both backends: attempts, expiry, purge, races, data at rest."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Executable, Result, update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from api.domain import clock as domain_clock
from api.domain import crypto, events, service
from api.domain.errors import InvalidInput, SecretNotFound, ServiceUnavailable
from api.domain.hashing import PassphraseHasher
from api.domain.purge import purge_expired, purge_forever
from api.settings import Settings
from api.storage.database import Database
from api.storage.statements import secret_columns, secrets_table
from models import Secret
from tests.clocks import eventually


async def new_secret(
    db: Database,
    settings: Settings,
    hasher: PassphraseHasher,
    secret: str = "s3cr3t",
    ttl: int | None = None,
) -> str:
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=secret, passphrase="right", ttl_seconds=ttl
    )
    return created.secret_key


async def execute(db: Database, statement: Executable) -> Result[Any]:
    """Run `statement` in a transaction of its own, through SQLAlchemy."""
    async with db.engine.begin() as connection:
        return await connection.execute(statement)


async def expire(db: Database, secret_key: str) -> None:
    await execute(
        db,
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(secret_key))
        # By the service's clock, which a test may have stopped (`frozen_now`).
        .values(expires_at=domain_clock.now() - timedelta(seconds=1)),
    )


async def row_exists(db: Database, secret_key: str) -> bool:
    result = await execute(
        db,
        select(secret_columns.id).where(
            secret_columns.lookup_hash == crypto.lookup_hash(secret_key)
        ),
    )
    return result.first() is not None


async def test_reveal_once(db: Database, settings: Settings, hasher: PassphraseHasher) -> None:
    key = await new_secret(db, settings, hasher)
    assert (
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )
        == "s3cr3t"
    )
    assert not await row_exists(db, key)
    with pytest.raises(SecretNotFound):
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )


async def test_attempt_limit_destroys_the_secret(
    db: Database, configure: Any, settings: Settings, hasher: PassphraseHasher
) -> None:
    configure(MAX_FAILED_ATTEMPTS="3")
    key = await new_secret(db, settings, hasher)
    for _ in range(2):
        with pytest.raises(SecretNotFound):
            await service.reveal_secret(
                db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="wrong"
            )
    assert await row_exists(db, key)
    with pytest.raises(SecretNotFound):
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="wrong"
        )
    assert not await row_exists(db, key)
    with pytest.raises(SecretNotFound):
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )


async def test_right_passphrase_after_some_failures(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    key = await new_secret(db, settings, hasher)
    for _ in range(4):
        with pytest.raises(SecretNotFound):
            await service.reveal_secret(
                db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="wrong"
            )
    assert (
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )
        == "s3cr3t"
    )


async def test_expired_secret_is_not_revealed_even_before_purge(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    key = await new_secret(db, settings, hasher)
    await expire(db, key)
    assert await row_exists(db, key)
    with pytest.raises(SecretNotFound):
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )
    with pytest.raises(SecretNotFound):
        await service.burn_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )


async def test_purge_deletes_only_expired_in_batches(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    expired = [await new_secret(db, settings, hasher) for _ in range(5)]
    live = await new_secret(db, settings, hasher)
    for key in expired:
        await expire(db, key)
    reported: list[tuple[str, int]] = []
    events.subscribe(lambda event, count, label: reported.append((event, count)))
    purged = await purge_expired(db=db, batch_size=2)
    assert purged >= 5
    assert (events.PURGED, purged) in reported
    assert not any([await row_exists(db, key) for key in expired])
    assert await row_exists(db, live)
    assert await purge_expired(db=db, batch_size=2) == 0


async def _gone(db: Database, key: str) -> bool:
    return not await row_exists(db, key)


async def test_purge_loop_runs_in_the_background(
    app: FastAPI, db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    key = await new_secret(db, settings, hasher)
    await expire(db, key)
    task = asyncio.create_task(
        purge_forever(db, interval_seconds=0.05, batch_size=10, pause_seconds=0)
    )
    try:
        await eventually(lambda: _gone(db, key), "the purge loop deleted the expired secret")
    finally:
        task.cancel()


@pytest.mark.usefixtures("frozen_now")  # counts live secrets: none may expire meanwhile
async def test_count_live(db: Database, settings: Settings, hasher: PassphraseHasher) -> None:
    before = await service.count_live(db=db)
    key = await new_secret(db, settings, hasher)
    assert await service.count_live(db=db) == before + 1
    await expire(db, key)
    assert await service.count_live(db=db) == before


async def test_nothing_readable_at_rest(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    secret, passphrase = "canary-secret-\u0000-9f3e", "canary-pass-41c7"
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=secret, passphrase=passphrase
    )
    async with AsyncSession(db.engine) as session:
        row = (
            await session.exec(
                select(Secret).where(
                    secret_columns.lookup_hash == crypto.lookup_hash(created.secret_key)
                )
            )
        ).one()
    stored = b"".join(
        value if isinstance(value, bytes) else str(value).encode()
        for value in row.model_dump().values()
    )
    for needle in (secret, passphrase, created.secret_key, created.receipt_key):
        assert needle.encode() not in stored
        assert needle.encode("utf-16-le") not in stored
    assert bytes.fromhex(created.secret_key) not in stored
    assert row.passphrase_hash.startswith("$ots2$")  # an argon2id verifier, never the key material
    assert isinstance(row.ciphertext, bytes)


async def test_ciphertext_is_bound_to_its_row(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    """Swapping ciphertext between rows (a tampered database) is detected, never decrypted."""
    first, second = (
        await new_secret(db, settings, hasher, "first"),
        await new_secret(db, settings, hasher, "second"),
    )
    first_hash, second_hash = crypto.lookup_hash(first), crypto.lookup_hash(second)
    second_ciphertext = (
        await execute(
            db, select(secret_columns.ciphertext).where(secret_columns.lookup_hash == second_hash)
        )
    ).scalar_one()
    await execute(
        db,
        update(secrets_table)
        .where(secret_columns.lookup_hash == first_hash)
        .values(ciphertext=second_ciphertext),
    )
    with pytest.raises(SecretNotFound):
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=first, passphrase="right"
        )


async def test_invalid_input_names_the_field(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create_secret(
            db=db, settings=settings, hasher=hasher, secret="s", passphrase="p", ttl_seconds=1
        )
    assert caught.value.field == "ttl_seconds"


async def test_twenty_concurrent_reveals_one_success(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    key = await new_secret(db, settings, hasher, "raced")

    async def attempt() -> str | None:
        try:
            return await service.reveal_secret(
                db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
            )
        except SecretNotFound:
            return None
        except ServiceUnavailable:
            # Every attempt left was being checked at that moment: "retry", not "not found".
            return "retry"

    results = await asyncio.gather(*(attempt() for _ in range(20)))
    assert results.count("raced") == 1
    assert results.count(None) + results.count("retry") == 19
    with pytest.raises(SecretNotFound):  # a retry, once the checks in flight are done
        await service.reveal_secret(
            db=db, settings=settings, hasher=hasher, secret_key=key, passphrase="right"
        )


async def test_twenty_concurrent_http_reveals_one_success(client: httpx.AsyncClient) -> None:
    created = await client.post("/generate", json={"secret": "raced", "passphrase": "pw"})
    key = created.json()["secret_key"]

    async def attempt(i: int) -> httpx.Response:
        if i % 2:
            return await client.post(f"/secrets/{key}", json={"passphrase": "pw"})
        return await client.get(f"/secrets/{key}", params={"passphrase": "pw"})

    responses = await asyncio.gather(*(attempt(i) for i in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1
    assert set(statuses) <= {200, 404, 503}  # 503: the attempts left were all in flight
    assert all(r.headers["retry-after"] == "1" for r in responses if r.status_code == 503)
    assert (await attempt(1)).status_code == 404


async def test_row_ids_are_random(
    db: Database, settings: Settings, hasher: PassphraseHasher
) -> None:
    key = await new_secret(db, settings, hasher)
    row_id = (
        await execute(
            db,
            select(secret_columns.id).where(secret_columns.lookup_hash == crypto.lookup_hash(key)),
        )
    ).scalar_one()
    assert isinstance(row_id, uuid.UUID)
    assert row_id.version == 4


async def test_database_errors_never_carry_bound_values(db: Database) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import DBAPIError

    canary = "canary-parameter-3d9a"
    # No passphrase_hash: the database refuses the row, with our values bound to the statement.
    statement = insert(secrets_table).values(
        id=uuid.uuid4(),
        lookup_hash=canary.encode(),
        ciphertext=canary.encode(),
        failed_attempts=0,
        created_at=datetime.now(UTC),
        expires_at=datetime.now(UTC),
    )
    with pytest.raises(DBAPIError) as caught:
        await execute(db, statement)
    assert "SQL parameters hidden" in str(caught.value)
