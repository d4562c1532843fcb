"""The SQLAlchemy engine: the embedded SQLite's statements, migrations, the SQL dialect."""

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

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

    On PostgreSQL the service's own statements run on `api.pgpool` instead (see
    `api.database`), and this engine opens a connection only for tools and tests (migrations
    pass `bound_statements=False` to an engine of their own). There is no pre-ping: with
    asyncpg it costs three round trips per checkout.
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
