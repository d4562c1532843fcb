"""PgBouncer in transaction mode in front of PostgreSQL: the service works through it.

The tests start Debian's `pgbouncer` (installed by `scripts/install --test`) on a free port in
front of the test PostgreSQL, with few server connections, so that every client connection
shares them and a server connection changes hands after each transaction. Through it: the
migration command on an empty database, the full contract of both doors (the service
migrating itself at start, two workers at once), the reveal/burn/revoke race, and the
server-side statement bound. When `CI=true`, a missing PgBouncer or PostgreSQL fails them.
"""

import contextlib
import logging
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from api.settings import Settings
from api.storage.database import Database, DatabaseUnavailable, create_engine
from api.storage.migrations import alembic_config
from harness import ROOT
from harness.pgbouncer import PgBouncer, pgbouncer_installed
from harness.uvicorn import Uvicorn
from tests.conftest import IN_CI, PG_ADMIN_DSN, create_pg_database, drop_pg_database
from tests.doors import PASSPHRASE, SECRET, GraphQL, Outcome, Rest
from tests.system.racing import create_for_race, run_racers
from tests.system.servers import run_server

pytestmark = pytest.mark.postgres

# Server connections per database and user: far fewer than the service's client connections.
SERVER_CONNECTIONS = 4
RACE_ROUNDS = 60
ACTIONS = ("reveal", "burn", "revoke")
STATUS_OF = {"reveal": "revealed", "burn": "burned", "revoke": "revoked"}
# What DB_POOL_TIMEOUT_SECONDS (5 s) asks the server for: 0.25 s less.
STATEMENT_TIMEOUT_MS = 4750
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout (or a cancel request).
QUERY_CANCELED = "57014"


def _require(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message + "; PgBouncer tests are mandatory when CI=true")
    pytest.skip(message)


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgBouncer]:
    """PgBouncer on a free port, in front of the test PostgreSQL, for this module's tests."""
    if not pgbouncer_installed():
        _require("pgbouncer is not installed (scripts/install --test installs it)")
    directory = tmp_path_factory.mktemp("pgbouncer")
    bouncer = PgBouncer(directory, PG_ADMIN_DSN, server_connections=SERVER_CONNECTIONS)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def _database(statement_timeout_ms: int | None) -> AsyncIterator[str]:
    """A fresh database, with a statement_timeout of its own if given; its direct URL."""
    url = await create_pg_database()
    try:
        if statement_timeout_ms is not None:
            # What an operator does behind PgBouncer (on the role, or as here the database):
            # the connection cannot send it as a startup parameter through PgBouncer.
            name = url.rsplit("/", 1)[1]
            await _admin(f'ALTER DATABASE "{name}" SET statement_timeout = {statement_timeout_ms}')
        yield url
    finally:
        await drop_pg_database(url)


@dataclass
class Service:
    """The service, two workers, reaching its database only through PgBouncer."""

    server: Uvicorn
    direct_url: str


@pytest.fixture(scope="module")
async def service(
    pgbouncer: PgBouncer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    """Both workers start at once on an empty database, and migrate it through PgBouncer."""
    log = tmp_path_factory.mktemp("pgbouncer-service") / "uvicorn.log"
    async with _database(STATEMENT_TIMEOUT_MS) as direct_url:
        env = {"DATABASE_URL": pgbouncer.url(direct_url), "SERVER_LOG": str(log)}
        with run_server(env, workers=2) as server:
            yield Service(server, direct_url)


# --- the migration command ---------------------------------------------------------------


def _alembic(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


async def test_migration_command_through_pgbouncer(pgbouncer: PgBouncer) -> None:
    """`alembic upgrade head`, as a deploy job runs it, on an empty database."""
    async with _database(None) as direct_url:
        upgraded = _alembic(pgbouncer.url(direct_url), "upgrade", "head")
        assert upgraded.returncode == 0, upgraded.stderr
        connection = await asyncpg.connect(direct_url.replace("+asyncpg", "", 1))
        try:
            assert await connection.fetchval("SELECT version_num FROM alembic_version") == HEAD
            tables = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
            assert {row[0] for row in tables} >= {"secrets", "receipts", "alembic_version"}
        finally:
            await connection.close()


async def test_migration_command_runs_again_through_pgbouncer(pgbouncer: PgBouncer) -> None:
    """Every deploy runs `alembic upgrade head`; on a current schema it must do nothing."""
    async with _database(None) as direct_url:
        runs = [_alembic(pgbouncer.url(direct_url), "upgrade", "head") for _ in range(3)]
        assert [run.returncode for run in runs] == [0, 0, 0], runs[-1].stderr[-2000:]


# --- the contract through PgBouncer ------------------------------------------------------


def _receipt_status(outcome: Outcome) -> str | None:
    assert outcome.kind == "receipt", outcome
    return outcome.value


@pytest.mark.parametrize("door_class", [Rest, GraphQL])
async def test_full_contract_through_pgbouncer(
    service: Service, door_class: type[Rest | GraphQL]
) -> None:
    """Create, reveal, wrong passphrase, burn, receipts read and revoked: all through it."""
    async with httpx.AsyncClient(base_url=service.server.url, timeout=30) as http:
        door = door_class(http)
        created = await door.create(secret=SECRET, passphrase=PASSPHRASE)
        assert created.kind == "created"
        assert created.value
        assert created.receipt_key
        key, receipt_key = created.value, created.receipt_key
        assert _receipt_status(await door.receipt(receipt_key)) == "pending"
        assert (await door.reveal(key, "wrong " + PASSPHRASE)).kind == "not_found"
        receipt = await door.receipt(receipt_key)
        assert receipt.receipt is not None
        assert receipt.receipt[3] == 1  # one failed attempt
        revealed = await door.reveal(key, PASSPHRASE)
        assert (revealed.kind, revealed.value) == ("revealed", SECRET)
        assert (await door.reveal(key, PASSPHRASE)).kind == "not_found"
        assert _receipt_status(await door.receipt(receipt_key)) == "revealed"

        burned = await door.create(secret=SECRET, passphrase=PASSPHRASE)
        assert burned.value
        assert burned.receipt_key
        assert (await door.burn(burned.value, PASSPHRASE)).kind == "burned"
        assert (await door.reveal(burned.value, PASSPHRASE)).kind == "not_found"
        assert _receipt_status(await door.receipt(burned.receipt_key)) == "burned"

        revoked = await door.create(secret=SECRET, passphrase=PASSPHRASE)
        assert revoked.value
        assert revoked.receipt_key
        assert _receipt_status(await door.revoke(revoked.receipt_key)) == "revoked"
        assert (await door.reveal(revoked.value, PASSPHRASE)).kind == "not_found"
        assert (await door.receipt("f" * 32)).kind == "not_found"


async def test_service_behind_pgbouncer_leaves_no_lock_and_no_warning(service: Service) -> None:
    """Both workers migrated (one waited) and released the lock; the server bounds statements."""
    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{service.server.url}/readyz")).status_code == 200
    connection = await asyncpg.connect(service.direct_url.replace("+asyncpg", "", 1))
    try:
        assert await connection.fetchval("SELECT version_num FROM alembic_version") == HEAD
        advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        assert await connection.fetchval(advisory) == 0
    finally:
        await connection.close()
    log = service.server.log()
    for problem in ("statement_timeout", "ERROR", "Traceback", "unsupported startup parameter"):
        assert problem not in log


# --- the race through PgBouncer ----------------------------------------------------------


def test_reveal_burn_revoke_race_through_pgbouncer(
    service: Service, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three client processes act on every secret at once; one winner each, as without it."""
    base_url = service.server.url
    secrets = create_for_race(base_url, RACE_ROUNDS, PASSPHRASE)
    plans = [
        {
            "url": base_url,
            "action": action,
            "secrets": secrets,
            "spacing_seconds": 0.03,
        }
        for action in ACTIONS
    ]
    won: dict[str, list[str]] = {secret["key"]: [] for secret in secrets}
    calls: dict[str, list[dict[str, Any]]] = {secret["key"]: [] for secret in secrets}
    for action, records in zip(ACTIONS, run_racers(plans, tmp_path), strict=True):
        for record in records:
            calls[record["key"]].append(record)
            if record["won"]:
                won[record["key"]].append(action)
    raced = sum(
        max(call["sent_at"] for call in each) < min(call["at"] for call in each)
        for each in calls.values()
    )
    with httpx.Client(base_url=base_url, timeout=30) as http:
        for secret in secrets:
            winners = won[secret["key"]]
            assert len(winners) == 1, (secret["key"], winners)
            receipt = http.get(f"/receipts/{secret['receipt_key']}").json()
            assert receipt["status"] == STATUS_OF[winners[0]]
    tally = Counter(actions[0] for actions in won.values())
    with capsys.disabled():
        print(
            f"\npgbouncer race: {RACE_ROUNDS} secrets, {SERVER_CONNECTIONS} server connections, "
            f"winners {dict(tally)}, all three calls in flight at once for {raced}"
        )
    # The race was run: how often, and which action won, is the machine's doing.
    assert raced > 0, "no secret saw its three calls in flight at once"
    assert "Traceback" not in service.server.log()


# --- the server's own statement bound ----------------------------------------------------


async def test_statement_bound_comes_from_the_server_behind_pgbouncer(
    pgbouncer: PgBouncer, caplog: pytest.LogCaptureFixture
) -> None:
    """No startup parameter through PgBouncer: the role's (here the database's) setting
    cancels a statement the client gave up on, and its absence is said once.

    The server's bound (750 ms) and the client's (a minute) are far apart here, so the
    error shows who ended the statement, whatever the machine's speed.
    """
    caplog.set_level(logging.WARNING, logger="api.storage.database")
    async with _database(750) as bounded, _database(None) as unbounded:
        # DB_POOL_TIMEOUT_SECONDS=1 asks the server for 750 ms: that setting is enough.
        exact = Database(
            create_engine(Settings(database_url=pgbouncer.url(bounded), db_pool_timeout_seconds=1))
        )
        try:
            assert await exact.execute(text("SELECT 1")) == [(1,)]
        finally:
            await exact.aclose()
        patient = Settings(database_url=pgbouncer.url(bounded), db_pool_timeout_seconds=60)
        database = Database(create_engine(patient))
        try:
            with pytest.raises(DatabaseUnavailable) as caught:
                await database.execute(text("SELECT pg_sleep(30)"))
            # The server cancelled it (the client did not give up, nor cut the connection
            # off) and the pool goes on.
            context = caught.value.__context__
            assert isinstance(context, DBAPIError), repr(context)
            assert getattr(context.orig, "sqlstate", None) == QUERY_CANCELED, repr(context)
            assert await database.execute(text("SELECT 1")) == [(1,)]
        finally:
            await database.aclose()
        assert [r for r in caplog.records if "statement_timeout" in r.getMessage()] == []

        database = Database(create_engine(Settings(database_url=pgbouncer.url(unbounded))))
        try:
            for _ in range(2):
                assert await database.execute(text("SELECT 1")) == [(1,)]
        finally:
            await database.aclose()
        warnings = [r for r in caplog.records if "statement_timeout" in r.getMessage()]
        assert len(warnings) == 1
        assert "ALTER ROLE" in warnings[0].getMessage()
