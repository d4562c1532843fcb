"""The SQLAlchemy engine, and the `Database` that runs the service's statements on it.

Statements are built once with SQLAlchemy Core; no ORM session. A step that is one statement
(a read, a token's update) runs in autocommit through `Database.execute`: one round trip. A
write that changes several rows together (a secret, its receipt and the storage quota) runs
in `Database.transaction()`, on SQLite and PostgreSQL alike. Nothing outlives its
transaction on the connection, so PgBouncer in transaction mode can pool it. A failure of
the database (down, frozen, every connection busy) surfaces as `DatabaseUnavailable`, which
carries no SQL and no bound values.

With `?prepared_statement_cache_size=0` in DATABASE_URL (PgBouncer in transaction mode) no
statement is named, and the server's own statement bound comes from the role's settings.

SQLAlchemy's own pool and asyncpg dialect carry the statements. An asyncpg pool of our own,
fed SQL compiled once, was measured against this at the default argon2 parameters and was
not 5% ahead (the benchmark's A/B of commits a11e081 and c338a63), so it was removed.
"""

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from api.settings import Settings
from api.storage import sqlite

logger = logging.getLogger(__name__)

Rows = Sequence[Sequence[Any]]

# A reveal checks a connection out twice (to claim an attempt, then to delete the row) and
# gives it back while argon2 runs, so each wait gets an equal share of DB_POOL_TIMEOUT_SECONDS:
# under overload the request as a whole still answers 503 within that time.
CHECKOUTS_PER_REQUEST = 2
# DATABASE_URL options for asyncpg; anything else would fail every connection, so it is
# refused at start-up. `prepared_statement_cache_size=0` is PgBouncer mode (transaction pooling).
POSTGRES_URL_OPTIONS = frozenset({"ssl", "target_session_attrs", "prepared_statement_cache_size"})
# What a database that is down, frozen or saturated raises (TimeoutError is an OSError).
UNAVAILABLE_ERRORS = (DBAPIError, PoolTimeoutError, OSError)
# PostgreSQL cancels a statement itself this long before the client gives up on it, so the
# server's cancel (which leaves the connection usable) normally comes first.
SERVER_TIMEOUT_MARGIN_SECONDS = 0.25


class DatabaseUnavailable(Exception):
    """The database did not answer in time; the message names only the failure's type."""


def create_engine(settings: Settings, *, bound_statements: bool = True) -> AsyncEngine:
    """Create the async engine for `settings.database_url` with a bounded pool.

    On PostgreSQL, `bound_statements` (the default, for serving requests) makes every
    statement fail after DB_POOL_TIMEOUT_SECONDS; migrations pass False, since a schema
    change may rightly take longer than a request may wait. There is no pre-ping: with
    asyncpg it costs a round trip per checkout, and a dead connection fails fast anyway.
    """
    connect_args: dict[str, Any]
    pgbouncer = is_pgbouncer_url(settings.database_url)
    server_ms = max(
        1, int((settings.db_pool_timeout_seconds - SERVER_TIMEOUT_MARGIN_SECONDS) * 1000)
    )
    if settings.is_sqlite:
        sqlite.create_private_file(settings.database_url)
        connect_args = {"timeout": sqlite.BUSY_TIMEOUT_MS / 1000}
    else:
        connect_args = {"timeout": settings.db_pool_timeout_seconds}
        if pgbouncer:
            # Named prepared statements live on one server connection, which a pooler in
            # transaction mode hands to another client after each transaction. Without
            # asyncpg's cache every statement (SQLAlchemy's and asyncpg's own) is unnamed and
            # parsed and run in one exchange that PgBouncer keeps on one server connection.
            connect_args["statement_cache_size"] = 0
        if bound_statements:
            # A server that accepts TCP but never answers (frozen, partitioned, stuck on a
            # lock) would otherwise hold a request forever.
            connect_args["command_timeout"] = settings.db_pool_timeout_seconds
            # A statement the client gave up on must not go on waiting for a lock and commit
            # later: the server enforces its own bound, even when no cancel request reaches it.
            # PgBouncer refuses this startup parameter; there the role or database carries it
            # (`ALTER ROLE … SET statement_timeout`), which the first connection checks.
            if not pgbouncer:
                connect_args["server_settings"] = {"statement_timeout": str(server_ms)}
    engine = create_async_engine(
        settings.database_url,
        # Errors and logs must never carry bound values: ciphertext, hashes, lookup digests.
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds / CHECKOUTS_PER_REQUEST,
        connect_args=connect_args,
    )
    if settings.is_sqlite:
        event.listen(engine.sync_engine, "connect", sqlite.configure_connection)
    else:
        if bound_statements:
            event.listen(engine.sync_engine, "handle_error", _cut_off_timed_out)
            if pgbouncer:
                check = functools.partial(_check_server_timeout, bound_ms=server_ms)
                event.listen(engine.sync_engine, "connect", check, once=True)
        unknown = set(engine.url.query) - POSTGRES_URL_OPTIONS
        if unknown:
            raise ValueError(f"DATABASE_URL: options not supported: {', '.join(sorted(unknown))}")
    return engine


def is_pgbouncer_url(url: str) -> bool:
    """Whether DATABASE_URL asks for PgBouncer mode (`?prepared_statement_cache_size=0`)."""
    return make_url(url).query.get("prepared_statement_cache_size") == "0"


def _check_server_timeout(dbapi_connection: Any, _record: Any, *, bound_ms: int) -> None:
    # Behind PgBouncer only the server's own setting can cancel a statement the client gave up
    # on; say so once if it is missing, rather than lose that bound silently.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'statement_timeout'")
        (setting_ms,) = cursor.fetchone()
    finally:
        cursor.close()
        dbapi_connection.rollback()
    if setting_ms == 0 or setting_ms > bound_ms:
        logger.warning(
            "statement_timeout is %d ms on the server; behind PgBouncer the connection cannot "
            "set it, so set it on the role: ALTER ROLE <user> SET statement_timeout = %d",
            setting_ms,
            bound_ms,
        )


def _cut_off_timed_out(context: ExceptionContext) -> None:
    # asyncpg's command_timeout fired: the server could not even cancel the statement itself.
    # SQLAlchemy would close the connection politely, waiting up to 2 s (fixed in its asyncpg
    # dialect) for a cancel request and a goodbye that such a server will not read.
    if isinstance(context.original_exception, TimeoutError) and context.connection is not None:
        driver = context.connection.connection.driver_connection  # the asyncpg connection
        if driver is not None:
            driver.terminate()


class Database:
    """Runs prebuilt statements through a SQLAlchemy engine: alone, or in a transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._scrubs = self.dialect == "sqlite"

    async def execute(self, statement: Executable, **parameters: Any) -> Rows:
        """Run `statement` alone, in autocommit; return its rows (none if it has none).

        A read, or a write that is atomic on its own: INSERT, UPDATE and DELETE run here too.
        Raises `DatabaseUnavailable` when the database fails or no connection frees up in time.
        """
        try:
            async with self.engine.connect() as connection:
                await connection.execution_options(isolation_level="AUTOCOMMIT")
                result = await connection.execute(statement, parameters)
                return result.all() if result.returns_rows else ()
        except UNAVAILABLE_ERRORS as error:
            # The original may quote SQL; its type is enough to diagnose.
            raise DatabaseUnavailable(type(error).__name__) from None

    async def execute_many(self, statement: Executable, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run `statement` once for each of `rows`, in one round trip and one transaction.

        Raises `DatabaseUnavailable` as `execute` does.
        """
        try:
            async with self.engine.begin() as connection:
                await connection.execute(statement, list(rows))
        except UNAVAILABLE_ERRORS as error:
            raise DatabaseUnavailable(type(error).__name__) from None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator["Transaction"]:
        """Run several statements as one transaction: all of them commit, or none.

        For writes that change several rows together (a secret, its receipt, the storage
        quota). Each such transaction starts with a write, so on SQLite it takes the write
        lock first and never has to upgrade a read lock (which could deadlock). Raises
        `DatabaseUnavailable` as `execute` does.
        """
        try:
            async with self.engine.begin() as connection:
                yield Transaction(connection)
        except UNAVAILABLE_ERRORS as error:
            raise DatabaseUnavailable(type(error).__name__) from None

    async def scrub(self) -> None:
        """After a deletion: leave no copy of the deleted rows in the database files.

        On SQLite, checkpoint and truncate the write-ahead log (`api.storage.sqlite`); a
        failure is logged, never raised. On PostgreSQL dead tuples stay until vacuum;
        SECURITY.md says what that means.
        """
        if not self._scrubs:
            return
        try:
            await self.execute(sqlite.SCRUB)
        except DatabaseUnavailable as error:
            # The deletion has committed: its answer (a revealed secret) must still go out,
            # or the secret is lost. The rows stay in the log until the next scrub empties it.
            logger.warning("the SQLite write-ahead log was not emptied after a deletion: %s", error)

    async def aclose(self) -> None:
        """Close every connection."""
        await self.engine.dispose()


class Transaction:
    """The statements of one transaction, run by `Database.transaction`."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, **parameters: Any) -> Rows:
        """Run `statement` in the transaction; return its rows (none if it has none)."""
        result = await self._connection.execute(statement, parameters)
        return result.all() if result.returns_rows else ()
