"""The asyncpg connection pool (`api.pgpool`) and the database that runs statements on it.

On PostgreSQL only: the pool's bound on connections, their reuse, its bounded wait, that a
connection whose statement failed, was cancelled or was closed by the server is never lent
again, and `close`. Then `AsyncpgDatabase`: a database failure is a `DBAPIError` carrying no
statement and no values, and the literals SQLAlchemy binds are sent with each statement.
"""

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Integer, String, bindparam, literal, select
from sqlalchemy.exc import DBAPIError

from api.database import AsyncpgDatabase, open_database
from api.db import create_engine
from api.pgpool import ConnectionPool
from api.settings import Settings

# The pool is asyncpg's alone: every test runs on the run's PostgreSQL database only.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.parametrize("backend", ["postgres"], indirect=True),
]


class Connector:
    """Opens asyncpg connections for a pool and remembers each one it opened."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.opened: list[asyncpg.Connection] = []

    async def __call__(self) -> asyncpg.Connection:
        connection = await asyncpg.connect(self.dsn)
        self.opened.append(connection)
        return connection

    @property
    def calls(self) -> int:
        """How many connections the pool asked for."""
        return len(self.opened)


@pytest.fixture
def pg_dsn(database_url: str) -> str:
    """The run's PostgreSQL database, as a DSN asyncpg takes."""
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
async def connector(pg_dsn: str) -> AsyncIterator[Connector]:
    """A counting `connect` for a pool; whatever the pool leaves open is closed after the test."""
    connector = Connector(pg_dsn)
    yield connector
    for connection in connector.opened:
        if not connection.is_closed():
            await connection.close()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[AsyncpgDatabase]:
    """The service's database on PostgreSQL, as `open_database` makes it."""
    settings = Settings(database_url=database_url, db_pool_size=1, db_pool_timeout_seconds=0.4)
    database = open_database(create_engine(settings), settings)
    try:
        assert isinstance(database, AsyncpgDatabase)
        yield database
    finally:
        await database.aclose()


async def test_lends_at_most_size_connections_at_once(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=3, timeout=5)
    held = peak = done = 0

    async def statement() -> None:
        nonlocal held, peak, done
        async with pool.connection() as connection:
            held += 1
            peak = max(peak, held)
            try:
                await connection.execute("SELECT pg_sleep(0.05)")
            finally:
                held -= 1
        done += 1

    try:
        await asyncio.gather(*(statement() for _ in range(20)))
    finally:
        await pool.close()
    assert done == 20
    # More than one at once, or the bound was never put to the test.
    assert 2 <= peak <= 3
    assert connector.calls <= 3


async def test_reuses_a_released_connection(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=2, timeout=1)
    pids = []
    try:
        for _ in range(5):
            async with pool.connection() as connection:
                pids.append(await connection.fetchval("SELECT pg_backend_pid()"))
    finally:
        await pool.close()
    assert len(set(pids)) == 1
    assert connector.calls == 1


async def test_waits_at_most_timeout_for_a_busy_pool(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=1, timeout=0.2)
    taken, give_back = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with pool.connection():
            taken.set()
            await give_back.wait()

    holder = asyncio.create_task(hold())
    try:
        async with asyncio.timeout(1):  # Bounded, should the holder itself fail to connect.
            await taken.wait()
        start = time.perf_counter()
        with pytest.raises(TimeoutError):
            async with pool.connection():
                pass
        assert 0.15 <= time.perf_counter() - start <= 1.0

        give_back.set()
        await holder
        # The wait that timed out took no slot and gave none back: exactly one is lendable.
        async with pool.connection() as connection:
            assert await connection.fetchval("SELECT 1") == 1
            with pytest.raises(TimeoutError):
                async with pool.connection():
                    pass
    finally:
        give_back.set()
        await asyncio.gather(holder, return_exceptions=True)
        await pool.close()


async def test_failed_statement_closes_its_connection(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=1, timeout=1)
    try:
        with pytest.raises(asyncpg.DataError):
            async with pool.connection() as failed:
                await failed.fetchval("SELECT 1/0")
        # Closed in the background; its place in the pool is free once it is.
        async with pool.connection() as connection:
            assert failed.is_closed()
            assert connection is not failed
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
    assert connector.calls == 2


async def test_cancelled_statement_closes_its_connection(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=1, timeout=1)
    lent: list[asyncpg.Connection] = []
    running = asyncio.Event()

    async def sleep_long() -> None:
        async with pool.connection() as connection:
            lent.append(connection)
            running.set()
            await connection.execute("SELECT pg_sleep(5)")

    task = asyncio.create_task(sleep_long())
    try:
        async with asyncio.timeout(1):
            await running.wait()
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with pool.connection() as connection:
            assert lent[0].is_closed()
            assert connection is not lent[0]
            assert await connection.fetchval("SELECT 1") == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def test_replaces_a_connection_the_server_closed(connector: Connector, pg_dsn: str) -> None:
    pool = ConnectionPool(connector, size=1, timeout=1)
    try:
        async with pool.connection() as first:
            pid = await first.fetchval("SELECT pg_backend_pid()")
        admin = await asyncpg.connect(pg_dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        for _ in range(100):  # The client reads the server's goodbye in well under 1 s.
            if first.is_closed():
                break
            await asyncio.sleep(0.01)
        assert first.is_closed()

        async with pool.connection() as connection:
            assert connection is not first
            assert await connection.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await pool.close()
    assert connector.calls == 2


async def test_close_waits_for_lent_connections_then_closes_all(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=2, timeout=1)
    released = asyncio.Event()

    async def finish_a_statement() -> asyncpg.Connection:
        async with pool.connection() as busy:
            released.set()
            await busy.fetchval("SELECT pg_sleep(0.2)")
        return busy

    async with pool.connection() as idle:
        pass
    task = asyncio.create_task(finish_a_statement())
    await asyncio.wait_for(released.wait(), 1)
    started = time.perf_counter()
    await pool.close()
    busy = await task
    assert 0.1 < time.perf_counter() - started < 1  # waited for the statement, not the timeout
    assert idle.is_closed()
    assert busy.is_closed()
    with pytest.raises(asyncpg.InterfaceError):
        async with pool.connection():
            pass


async def test_close_cuts_off_a_connection_lent_too_long(connector: Connector) -> None:
    pool = ConnectionPool(connector, size=1, timeout=0.2)
    async with pool.connection() as busy:
        started = time.perf_counter()
        await pool.close()
        assert 0.15 < time.perf_counter() - started < 1
        assert busy.is_closed()


async def test_database_error_carries_no_statement_or_values(database: AsyncpgDatabase) -> None:
    canary = "canary-7f3e9b1c"
    failing = select(bindparam("canary", type_=String), literal(1) / literal(0))
    with pytest.raises(DBAPIError) as caught:
        await database.fetch(failing, canary=canary)
    error = caught.value
    assert isinstance(error.orig, asyncpg.DataError)
    assert (error.statement, error.params) == (None, None)
    assert canary not in str(error)
    assert "SELECT" not in str(error)
    # The failed connection was dropped; the next statement gets a working one.
    assert await database.fetch(select(literal(1))) == [(1,)]


async def test_busy_pool_is_a_database_error(database: AsyncpgDatabase) -> None:
    async with database.pool.connection():
        with pytest.raises(DBAPIError) as caught:
            await database.fetch(select(literal(1)))
    assert isinstance(caught.value.orig, TimeoutError)
    assert await database.fetch(select(literal(1))) == [(1,)]


async def test_fetch_sends_the_literals_sqlalchemy_binds(database: AsyncpgDatabase) -> None:
    # `literal(5)` becomes a parameter of its own that the caller never passes.
    statement = select(literal(5) + bindparam("n", type_=Integer), literal("five"))
    assert await database.fetch(statement, n=2) == [(7, "five")]
    assert await database.fetch(statement, n=-5) == [(0, "five")]


async def test_statements_completed_per_call_are_refused(database: AsyncpgDatabase) -> None:
    # An IN list's SQL depends on its values: it is no statement compiled once.
    expanding = select(literal(1)).where(literal(1).in_(bindparam("values", expanding=True)))
    with pytest.raises(NotImplementedError):
        await database.fetch(expanding, values=[1, 2])


async def _give_up_on_a_long_statement(pool: ConnectionPool, how: str, marker: str) -> None:
    statement = f"SELECT pg_sleep(5), '{marker}'"
    async with pool.connection() as connection:
        if how == "timeout":
            await connection.fetch(statement, timeout=0.2)
        else:
            task = asyncio.create_task(connection.fetch(statement))
            await asyncio.sleep(0.2)
            task.cancel()
            await task


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_statement_given_up_is_cancelled_on_the_server(
    connector: Connector, pg_dsn: str, how: str
) -> None:
    """A statement cut off on the client must not run on (waiting for a lock, say) and commit."""
    pool = ConnectionPool(connector, size=2, timeout=1)
    marker = f"given-up-{how}"
    observer = await asyncpg.connect(pg_dsn)
    try:
        async with pool.connection() as connection:
            pid = await connection.fetchval("SELECT pg_backend_pid()")
        with pytest.raises((TimeoutError, asyncio.CancelledError)):
            await _give_up_on_a_long_statement(pool, how, marker)
        running = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
        for _ in range(20):
            if not await observer.fetchval(running, pid):
                break
            await asyncio.sleep(0.05)
        assert await observer.fetchval(running, pid) == 0
    finally:
        await observer.close()
        await pool.close()


def test_database_url_options_are_checked_at_start(database_url: str) -> None:
    def options(query: str) -> dict[str, object]:
        settings = Settings(database_url=f"{database_url}?{query}")
        database = open_database(create_engine(settings), settings)
        assert isinstance(database, AsyncpgDatabase)
        return dict(database.connect_options)

    # SQLAlchemy's documented switch for PgBouncer reaches asyncpg as its own option.
    assert options("prepared_statement_cache_size=0")["statement_cache_size"] == 0
    assert options("ssl=disable")["ssl"] == "disable"
    # An option the service does not pass on fails at start-up, not on every request.
    with pytest.raises(ValueError, match="command_timeout"):
        options("command_timeout=3")
