"""The database the service's statements run on: failures become `DatabaseUnavailable`.

On both backends: a failure carries no statement and no values, a busy pool gives up within
its share of DB_POOL_TIMEOUT_SECONDS, and the database works again afterwards. On
PostgreSQL: a statement that outlives the timeout is cancelled on the server too, and
DATABASE_URL options are checked at start-up.

No upper bound here is a stopwatch: a wait is checked to have lasted at least its share, and
a statement to be given up on long before it would end by itself (`SLEEP_SECONDS`).
"""

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import String, bindparam, literal, select, text

from api.settings import Settings
from api.storage.database import (
    CHECKOUTS_PER_REQUEST,
    Database,
    DatabaseUnavailable,
    create_engine,
)
from tests.clocks import PATIENCE_SECONDS, eventually

TIMEOUT = 0.4
# What the statement that must be cancelled asks for: far longer than the test waits.
SLEEP_SECONDS = 120


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """The service's database with one connection and a short timeout."""
    settings = Settings(database_url=database_url, db_pool_size=1, db_pool_timeout_seconds=TIMEOUT)
    database = Database(create_engine(settings))
    try:
        yield database
    finally:
        await database.aclose()


async def test_failure_carries_no_statement_or_values(database: Database) -> None:
    canary = "canary-7f3e9b1c"
    failing = select(bindparam("canary", type_=String), text("no_such_column"))
    with pytest.raises(DatabaseUnavailable) as caught:
        await database.execute(failing, canary=canary)
    assert canary not in str(caught.value)
    assert "SELECT" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert await database.execute(select(literal(1))) == [(1,)]


async def test_busy_pool_gives_up_within_its_share_of_the_timeout(database: Database) -> None:
    # A request checks out twice, so each wait gets half of the timeout.
    share = TIMEOUT / CHECKOUTS_PER_REQUEST
    assert database.engine.pool.timeout() == share  # type: ignore[attr-defined]
    async with database.engine.connect():
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(database.execute(select(literal(1))), PATIENCE_SECONDS)
        # It waited for a connection, its share at least, then gave up.
        assert time.monotonic() - started >= 0.9 * share
    assert await database.execute(select(literal(1))) == [(1,)]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_statement_over_the_timeout_is_cancelled_on_the_server(
    database: Database, database_url: str
) -> None:
    """A statement given up on must not run on (waiting for a lock, say) and commit later."""
    marker = "given-up-statement"
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        await database.execute(text(f"SELECT pg_sleep({SLEEP_SECONDS}), '{marker}'"))
    # Given up on after its bound, not when the statement ended by itself.
    assert time.monotonic() - started < SLEEP_SECONDS / 4
    observer = await asyncpg.connect(database_url.replace("+asyncpg", "", 1))
    try:
        running = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE $1 AND state = 'active'"

        async def stopped() -> bool:
            return int(await observer.fetchval(running, f"%'{marker}'%")) == 0

        # Had the server let it run on, it would still run for most of SLEEP_SECONDS.
        await eventually(stopped, "the statement stopped on the server", patience=SLEEP_SECONDS / 4)
    finally:
        await observer.close()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_database_url_options_are_checked_at_start(database_url: str) -> None:
    def engine_for(query: str) -> object:
        return create_engine(Settings(database_url=f"{database_url}?{query}"))

    # SQLAlchemy's documented switch for PgBouncer, and TLS, are accepted.
    engine_for("prepared_statement_cache_size=0")
    engine_for("ssl=disable")
    # An option asyncpg does not take would fail every connection: refused at start-up.
    with pytest.raises(ValueError, match="statement_timeout_ms"):
        engine_for("statement_timeout_ms=3")
