"""The database engine, the one dependency both transports get it from, and `fetch`."""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Dialect, Executable, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from api.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A reveal checks a connection out twice (to claim an attempt, then to delete the row) and
# gives it back while argon2 runs, so each wait gets an equal share of DB_POOL_TIMEOUT_SECONDS:
# under overload the request as a whole still answers 503 within that time.
CHECKOUTS_PER_REQUEST = 2


def create_engine(settings: Settings, *, bound_statements: bool = True) -> AsyncEngine:
    """Create the async engine for `settings.database_url` with a bounded pool.

    On PostgreSQL, `bound_statements` (the default, for serving requests) makes every
    statement fail after DB_POOL_TIMEOUT_SECONDS; migrations pass False, since a schema
    change may rightly take longer than a request may wait.

    There is no pre-ping: with asyncpg it costs three round trips per checkout. A connection
    found dead invalidates the whole pool instead, so after a database restart the requests
    already holding stale connections get 503 and the following ones reconnect.
    """
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            hide_parameters=True,
            pool_size=settings.db_pool_size,
            max_overflow=0,
            pool_timeout=settings.db_pool_timeout_seconds / CHECKOUTS_PER_REQUEST,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    connect_args: dict[str, Any] = {"timeout": settings.db_pool_timeout_seconds}
    if bound_statements:
        # A server that accepts TCP but never answers (frozen, partitioned, stuck on a lock)
        # would otherwise hold a request forever.
        connect_args["command_timeout"] = settings.db_pool_timeout_seconds
    return create_async_engine(
        settings.database_url,
        # Errors and logs must never carry bound values: ciphertext, hashes, lookup digests.
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds / CHECKOUTS_PER_REQUEST,
        connect_args=connect_args,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; the busy timeout makes racing writers from
    # several processes wait their turn instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


async def get_engine(request: Request) -> AsyncEngine:
    """Return the application's engine.

    The service runs every step as one autocommit statement, so it needs no ORM session
    (whose set-up alone cost more CPU per request than the SQL sent).
    """
    engine: AsyncEngine = request.app.state.engine
    return engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A Core statement compiled once for asyncpg: its SQL and how to order its parameters."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]  # literals SQLAlchemy turned into parameters
    processors: Mapping[str, Callable[[Any], Any]]


@lru_cache(maxsize=64)
def _compile_for_driver(statement: Executable, dialect: Dialect) -> _DriverStatement:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    binds = {name: compiled.binds[name] for name in names}
    processors = {}
    for name, bind in binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    constants = {name: bind.value for name, bind in binds.items() if not bind.required}
    return _DriverStatement(compiled.string, names, constants, processors)


async def fetch(
    engine: AsyncEngine, statement: Executable, parameters: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    """Run one prebuilt statement in autocommit and return its rows as tuples.

    On asyncpg the SQL that SQLAlchemy compiled once runs straight on the driver's connection:
    building, compiling and wrapping every statement anew cost more CPU than the database
    spent on it. Other drivers (SQLite) run it through SQLAlchemy.
    """
    async with engine.connect() as connection:
        if engine.dialect.driver == "asyncpg":
            return await _fetch_on_driver(connection, statement, parameters)
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        result = await connection.execute(statement, dict(parameters))
        return result.all() if result.returns_rows else ()


async def _fetch_on_driver(
    connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    compiled = _compile_for_driver(statement, connection.dialect)
    values = {**compiled.constants, **parameters}
    arguments = [
        compiled.processors[name](values[name]) if name in compiled.processors else values[name]
        for name in compiled.names
    ]
    driver = (await connection.get_raw_connection()).driver_connection
    # A connection the server closed (a restart) is noticed without a round trip: trade it
    # for a fresh one, as often as the pool may hold stale ones.
    for _ in range(_pool_size(connection) + 1):
        if driver is not None and not driver.is_closed():
            break
        await connection.invalidate()
        driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    try:
        rows: Sequence[Sequence[Any]] = await driver.fetch(compiled.sql, *arguments)
    except Exception as exc:
        # The connection's state is unknown (timed out, cut off mid-statement): never reuse it.
        await connection.invalidate()
        # Mapped like every SQLAlchemy database error; no statement or values are attached.
        raise DBAPIError(None, None, exc, connection_invalidated=True) from None
    return rows


def _pool_size(connection: AsyncConnection) -> int:
    size: int = getattr(connection.engine.pool, "size", lambda: 0)()
    return size
