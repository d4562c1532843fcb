"""The storage quota: totals kept with every write, refusals that store nothing, room freed.

Every path that stores or deletes a secret is checked against the table itself: after each
one the kept totals equal `count(*)` and `sum(length(ciphertext))`, which the service never
computes per create. The race across processes is in `tests/system/test_quota_races.py`.
"""

import asyncio
import json
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.domain import crypto, service
from api.domain.purge import purge_expired
from api.settings import Settings
from api.storage import usage
from api.storage.database import Database, Transaction
from api.storage.statements import secret_columns, secrets_table
from api.telemetry.metrics import LiveSecrets
from tests.api.test_creators import ots_admin
from tests.clocks import eventually

PASSPHRASE = "quota-passphrase"
OVERHEAD = crypto.NONCE_BYTES + 16  # AES-GCM's nonce and tag


async def actual(db: Database) -> tuple[int, int]:
    """What the table holds, counted the slow way."""
    rows = await db.execute(
        select(func.coalesce(func.sum(func.length(secret_columns.ciphertext)), 0), func.count())
    )
    return int(rows[0][0]), int(rows[0][1])


@pytest.fixture
async def counted(db: Database) -> Database:
    """The database with totals that match its table (other tests write rows directly)."""
    await usage.recount(db)
    assert await service.storage_usage(db=db) == await actual(db)
    return db


async def create(client: httpx.AsyncClient, secret: str = "s" * 100) -> httpx.Response:
    return await client.post("/generate", json={"secret": secret, "passphrase": PASSPHRASE})


async def fill_holding_one(db: Database, client: httpx.AsyncClient, configure: Any) -> Any:
    """Store one secret, then set MAX_LIVE_SECRETS to what is stored; return the secret."""
    created = (await create(client)).json()
    _, stored = await actual(db)
    configure(MAX_LIVE_SECRETS=str(stored))
    return created


async def test_every_write_keeps_the_totals(
    counted: Database, client: httpx.AsyncClient, frozen_now: datetime
) -> None:
    db = counted
    # Other tests' secrets that expired since the last purge would go in this test's purge:
    # purged first, so the purge below takes only this test's expired secret.
    await purge_expired(db=db, batch_size=1000)
    before_bytes, before_secrets = await actual(db)
    made = [(await create(client, "x" * size)).json() for size in (1, 100, 5000, 7, 64, 3)]
    assert await service.storage_usage(db=db) == (
        before_bytes + sum((1, 100, 5000, 7, 64, 3)) + 6 * OVERHEAD,
        before_secrets + 6,
    )

    key = [created["secret_key"] for created in made]
    body = {"passphrase": PASSPHRASE}
    assert (await client.post(f"/secrets/{key[0]}", json=body)).status_code == 200  # reveal
    assert (await client.request("DELETE", f"/secrets/{key[1]}", json=body)).status_code == 204
    assert (await client.delete(f"/receipts/{made[2]['receipt_key']}")).status_code == 200
    for _ in range(5):  # the attempt limit destroys it
        await client.post(f"/secrets/{key[3]}", json={"passphrase": "wrong"})
    await db.execute(  # expires, then the purge deletes it
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(key[4]))
        .values(expires_at=frozen_now - timedelta(seconds=1))
    )
    assert await purge_expired(db=db, batch_size=1000) == 1
    assert await service.storage_usage(db=db) == await actual(db)
    assert await service.storage_usage(db=db) == (before_bytes + 3 + OVERHEAD, before_secrets + 1)


async def test_a_full_store_refuses_creates_stores_nothing_and_still_reveals(
    counted: Database, client: httpx.AsyncClient, configure: Any, settings: Settings
) -> None:
    db = counted
    kept = await fill_holding_one(db, client, configure)
    held = await actual(db)

    refused = await create(client)
    assert refused.status_code == 507
    assert refused.json() == {"detail": "Storage quota reached"}
    assert await actual(db) == held
    assert await service.storage_usage(db=db) == held

    # A reveal works at a full store and frees room at once.
    revealed = await client.post(f"/secrets/{kept['secret_key']}", json={"passphrase": PASSPHRASE})
    assert revealed.status_code == 200
    assert (await create(client)).status_code == 200
    assert (await create(client)).status_code == 507

    assert "onetime_secrets_refused_storage_quota_total" in (await client.get("/metrics")).text
    gauges = LiveSecrets(settings)  # uncached: the application's own may hold a count 15 s old
    await gauges.refresh(db)
    (ratio,) = [gauge for gauge in gauges.collect() if gauge.name.endswith("used_ratio")]
    assert {sample.labels["limit"]: sample.value for sample in ratio.samples}["secrets"] == 1.0


async def test_the_byte_limit_counts_ciphertext(
    counted: Database, client: httpx.AsyncClient, configure: Any
) -> None:
    used, _ = await actual(counted)
    # Room for exactly two 1,000-byte secrets, not three.
    configure(MAX_STORED_BYTES=str(used + 2 * (1000 + OVERHEAD) + 500))
    answers = [(await create(client, "b" * 1000)).status_code for _ in range(3)]
    assert answers == [200, 200, 507]
    # A smaller one still fits in what is left.
    assert (await create(client, "b" * 400)).status_code == 200


async def test_the_purge_frees_room(
    counted: Database, client: httpx.AsyncClient, configure: Any
) -> None:
    db = counted
    expiring = await fill_holding_one(db, client, configure)
    assert (await create(client)).status_code == 507
    await db.execute(
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(expiring["secret_key"]))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    await purge_expired(db=db, batch_size=1000)
    assert (await create(client)).status_code == 200
    assert await service.storage_usage(db=db) == await actual(db)


async def test_recount_repairs_totals_after_writes_behind_the_services_back(
    counted: Database, database_url: str
) -> None:
    db = counted
    now = datetime.now(UTC)
    await db.execute(
        insert(secrets_table).values(
            id=uuid.uuid4(),
            lookup_hash=crypto.lookup_hash(crypto.new_key()),
            ciphertext=b"\x00" * 321,
            passphrase_hash="x",
            failed_attempts=0,
            created_at=now,
            expires_at=now + timedelta(hours=1),
        )
    )
    assert await service.storage_usage(db=db) != await actual(db)  # not counted by itself
    shown = ots_admin(database_url, "storage", "recount", "--json")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["stored_bytes"], report["stored_secrets"]) == await actual(db)
    assert await service.storage_usage(db=db) == await actual(db)
    table = ots_admin(database_url, "storage")
    assert table.returncode == 0
    assert "bytes" in table.stdout
    assert "secrets" in table.stdout


async def test_the_migration_counts_what_was_stored_before(tmp_path: Any) -> None:
    """A database upgraded with secrets in it starts with their totals (alembic 0004)."""
    from alembic import command
    from sqlalchemy import create_engine as create_sync_engine
    from sqlalchemy import text

    from api.storage.migrations import alembic_config

    path = tmp_path / "old.db"
    engine = create_sync_engine(f"sqlite:///{path}")
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0003")
        now = datetime.now(UTC)
        for size in (10, 20, 30):
            connection.execute(
                insert(secrets_table).values(
                    id=uuid.uuid4(),
                    lookup_hash=crypto.lookup_hash(crypto.new_key()),
                    ciphertext=b"c" * size,
                    passphrase_hash="x",
                    failed_attempts=0,
                    created_at=now,
                    expires_at=now + timedelta(hours=1),
                    receipt_id=None,
                )
            )
        command.upgrade(config, "head")
        totals = connection.execute(
            text("SELECT sum(stored_bytes), sum(stored_secrets), count(*) FROM storage_usage")
        ).one()
    engine.dispose()
    assert tuple(totals) == (60, 3, usage.RELEASE_SHARDS + 1)


async def test_two_creates_racing_for_the_last_place_do_not_both_get_it(counted: Database) -> None:
    """The second reservation waits for the first transaction, then sees it: one place, one.

    A check made apart from the increment (read the totals, then add) lets both in on
    PostgreSQL: the second reads before the first commits. So the first keeps its
    transaction open until the second is seen waiting for it, not for a while: on
    PostgreSQL, blocked by the first's backend; on SQLite, its reservation begun (SQLite's
    trace hook) while the first holds the write lock.
    """
    db = counted
    _, stored = await service.storage_usage(db=db)
    place = {"size": 10, "max_bytes": 1 << 40, "max_secrets": stored + 1}
    first_holds_it = asyncio.Event()
    first_backend: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    second_backend: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    second_began = threading.Event()

    async def first() -> bool:
        async with db.engine.begin() as connection:
            first_backend.set_result(await _backend_pid(connection))
            reserved = await usage.reserve(Transaction(connection), **place)
            first_holds_it.set()
            await eventually(second_waits, "the second reservation waiting for the first")
        return reserved

    async def second_waits() -> bool:
        if db.dialect == "sqlite":
            return second_began.is_set()
        waiting_for = await db.execute(
            text("SELECT pg_blocking_pids(:pid)"), pid=await second_backend
        )
        return await first_backend in waiting_for[0][0]

    async def second() -> bool:
        await first_holds_it.wait()
        async with db.engine.begin() as connection:
            second_backend.set_result(await _backend_pid(connection))
            if db.dialect == "sqlite":
                await _on_reservation(connection, second_began.set)
            try:
                return await usage.reserve(Transaction(connection), **place)
            finally:
                await _on_reservation(connection, None)

    try:
        assert list(await asyncio.gather(first(), second())) == [True, False]
    finally:
        await usage.recount(db)


async def _backend_pid(connection: AsyncConnection) -> int:
    """The PostgreSQL backend of `connection` (0 on SQLite, which has none)."""
    if connection.dialect.name != "postgresql":
        return 0
    return int((await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _on_reservation(connection: AsyncConnection, call: Callable[[], None] | None) -> None:
    """On SQLite, `call` when `connection` begins running the reservation's UPDATE."""
    if connection.dialect.name != "sqlite":
        return
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None

    def traced(statement: str) -> None:
        if call is not None and statement.startswith("UPDATE storage_usage"):
            call()

    await driver.set_trace_callback(traced if call is not None else None)
