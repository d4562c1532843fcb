"""Where the service's statements run, and the one dependency both transports get it from.

Every step of the service is a single statement that is atomic on its own, built once with
SQLAlchemy Core, so it runs in autocommit: one round trip, no BEGIN/COMMIT.

- On PostgreSQL the SQL that SQLAlchemy compiled once runs on asyncpg connections from
  `api.pgpool`. Building, compiling and wrapping each statement anew, and checking
  connections in and out through SQLAlchemy's pool, cost the workers more CPU than the
  database spent on the statement.
- Elsewhere (the embedded SQLite) the statements run through the SQLAlchemy engine.

Either way a failure of the database surfaces as one of SQLAlchemy's errors (`DBAPIError`, or
its pool's `TimeoutError` on SQLite) that carries no bound values, and the transports answer
it with 503.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import Dialect, Executable
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from api.db import CHECKOUTS_PER_REQUEST
from api.pgpool import DRIVER_ERRORS, ConnectionPool
from api.settings import Settings

Rows = Sequence[Sequence[Any]]


class Database:
    """Runs prebuilt statements through a SQLAlchemy engine, each in autocommit."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def fetch(self, statement: Executable, **parameters: Any) -> Rows:
        """Run `statement` with `parameters` and return its rows as tuples (none if it has none)."""
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            result = await connection.execute(statement, parameters)
            return result.all() if result.returns_rows else ()

    async def aclose(self) -> None:
        """Close every connection."""
        await self.engine.dispose()


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A statement compiled for asyncpg: its SQL and how to order its parameters."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]  # literals that SQLAlchemy sends as parameters
    processors: Mapping[str, Callable[[Any], Any]]

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        """Return the positional arguments for `parameters`."""
        values = {**self.constants, **parameters}
        return [
            self.processors[name](values[name]) if name in self.processors else values[name]
            for name in self.names
        ]


@lru_cache(maxsize=64)
def _compile_for_driver(statement: Executable, dialect: Dialect) -> _DriverStatement:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    names = tuple(compiled.positiontup or ())
    binds = {name: compiled.binds[name] for name in names}
    if any(bind.expanding or bind.literal_execute for bind in binds.values()):
        # Their SQL is only completed per call, from the values: not a statement built once.
        raise NotImplementedError(f"expanding parameters cannot run on the driver: {statement}")
    processors = {}
    for name, bind in binds.items():
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    constants = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    return _DriverStatement(compiled.string, names, constants, processors)


# DATABASE_URL query options asyncpg takes as they are; the timeouts come from the settings.
_PASSED_OPTIONS = frozenset(
    {"host", "port", "user", "password", "database", "ssl", "target_session_attrs"}
)
_CACHE_OPTIONS = frozenset({"prepared_statement_cache_size", "statement_cache_size"})


def _driver_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Check the connection options from DATABASE_URL, as asyncpg.connect takes them.

    `prepared_statement_cache_size=0` (SQLAlchemy's name) or `statement_cache_size=0` turns
    asyncpg's statement cache off, as PgBouncer in transaction mode needs.
    """
    driver_options = {key: value for key, value in options.items() if key in _PASSED_OPTIONS}
    for name in _CACHE_OPTIONS & options.keys():
        driver_options["statement_cache_size"] = int(options[name])
    unknown = options.keys() - _PASSED_OPTIONS - _CACHE_OPTIONS
    if unknown:
        raise ValueError(f"DATABASE_URL: options not supported: {', '.join(sorted(unknown))}")
    return driver_options


class AsyncpgDatabase(Database):
    """Runs prebuilt statements, compiled once by SQLAlchemy, on a pool of asyncpg connections."""

    def __init__(
        self, engine: AsyncEngine, pool: ConnectionPool, connect_options: Mapping[str, Any]
    ) -> None:
        super().__init__(engine)
        self.pool = pool
        self.connect_options = connect_options  # from DATABASE_URL, as asyncpg takes them

    @classmethod
    def open(cls, engine: AsyncEngine, settings: Settings) -> "AsyncpgDatabase":
        """Create the pool for `engine`'s URL; it connects when a statement first needs to."""
        arguments, options = engine.dialect.create_connect_args(engine.url)
        options = _driver_options(options)

        async def connect() -> asyncpg.Connection:
            return await asyncpg.connect(
                *arguments,
                **options,
                timeout=settings.db_pool_timeout_seconds,
                # A server that accepts TCP but never answers (frozen, partitioned, stuck on
                # a lock) would otherwise hold a request forever.
                command_timeout=settings.db_pool_timeout_seconds,
            )

        pool = ConnectionPool(
            connect,
            size=settings.db_pool_size,
            timeout=settings.db_pool_timeout_seconds / CHECKOUTS_PER_REQUEST,
        )
        return cls(engine, pool, options)

    async def fetch(self, statement: Executable, **parameters: Any) -> Rows:
        """Run `statement` with `parameters` on the driver and return its rows."""
        compiled = _compile_for_driver(statement, self.engine.dialect)
        arguments = compiled.arguments(parameters)
        try:
            async with self.pool.connection() as connection:
                # asyncpg's Record is a sequence, though its stubs do not say so.
                return cast(Rows, await connection.fetch(compiled.sql, *arguments))
        except DRIVER_ERRORS as error:
            raise DBAPIError(None, None, error) from None

    async def aclose(self) -> None:
        """Close the pool's connections, then the engine."""
        await self.pool.close()
        await super().aclose()


def open_database(engine: AsyncEngine, settings: Settings) -> Database:
    """Return the database the service's statements run on, for `engine`."""
    if engine.dialect.driver == "asyncpg":
        return AsyncpgDatabase.open(engine, settings)
    return Database(engine)


async def get_database(request: Request) -> Database:
    """Return the application's database.

    The service runs every step as one autocommit statement, so it needs no ORM session
    (whose set-up alone cost more CPU per request than the SQL sent).
    """
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
