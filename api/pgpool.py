"""A small pool of asyncpg connections for single autocommit statements.

asyncpg's own pool wraps every release in a task (`asyncio.shield`) and every bounded
acquire in another (`wait_for`), and resets each connection it takes back; measured under
load, that cost the workers more CPU than the statements they ran. The service needs less:
its statements run one at a time in autocommit and leave no session state behind, so a
connection can go back to the pool as it is.

- At most `size` connections, opened when first needed and kept.
- `connection()` waits at most `timeout` seconds for a free one, connecting included, then
  raises `TimeoutError`.
- A connection the server closed (a restart) is noticed without a round trip and replaced.
- A connection whose statement failed, timed out or was cancelled is closed in the
  background and never handed out again. Closing asks the server to cancel a statement still
  running first: one merely cut off could go on waiting for a lock and commit later, after its
  caller was told it failed. Until it is closed it keeps its place in the pool, so a database
  that stops answering cannot make the pool open connection after connection.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import asyncpg

Connect = Callable[[], Awaitable[asyncpg.Connection]]
# What asyncpg raises when the database or the network fails (TimeoutError is an OSError).
DRIVER_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. no server with the wanted target_session_attrs
)


class ConnectionPool:
    """Hands out asyncpg connections, at most `size` at once."""

    def __init__(self, connect: Connect, *, size: int, timeout: float) -> None:
        self._connect = connect
        self._size = size
        self._timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[asyncpg.Connection] = []
        self._lent: set[asyncpg.Connection] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """Lend a connection for one statement; close it if the statement fails."""
        connection = await self._acquire()
        try:
            yield connection
        except BaseException:
            self._close_in_background(connection)
            raise
        self._release(connection)

    async def _acquire(self) -> asyncpg.Connection:
        if self._closed:
            raise asyncpg.InterfaceError("the connection pool is closed")
        loop = asyncio.get_running_loop()
        deadline = None
        if self._slots.locked():
            deadline = loop.time() + self._timeout
            async with asyncio.timeout_at(deadline):
                await self._slots.acquire()
        else:
            await self._slots.acquire()  # free: returns at once, and costs no timer
        connection = self._take_idle()
        if connection is None:
            if deadline is None:
                deadline = loop.time() + self._timeout
            try:
                async with asyncio.timeout_at(deadline):
                    connection = await self._connect()
            except BaseException:
                self._slots.release()
                raise
        self._lent.add(connection)
        return connection

    def _take_idle(self) -> asyncpg.Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
        return None

    def _release(self, connection: asyncpg.Connection) -> None:
        self._lent.discard(connection)
        if not connection.is_closed():
            self._idle.append(connection)
        self._slots.release()

    def _close_in_background(self, connection: asyncpg.Connection) -> None:
        task = asyncio.get_running_loop().create_task(self._close_failed(connection))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_failed(self, connection: asyncpg.Connection) -> None:
        try:
            await _close(connection, self._timeout)
        finally:
            self._lent.discard(connection)
            self._slots.release()

    async def close(self) -> None:
        """Stop lending; wait up to the timeout for lent connections, then close them all."""
        self._closed = True
        try:
            async with asyncio.timeout(self._timeout):
                for _ in range(self._size):
                    await self._slots.acquire()
        except TimeoutError:
            for connection in self._lent:  # still busy: cut off
                connection.terminate()
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close(connection, self._timeout) for connection in idle))
        await asyncio.gather(*self._closing, return_exceptions=True)


async def _close(connection: asyncpg.Connection, within: float) -> None:
    """Close politely (cancelling a running statement first); cut off what does not answer."""
    try:
        await connection.close(timeout=within)
    except DRIVER_ERRORS:
        connection.terminate()
    except asyncio.CancelledError:
        connection.terminate()
        raise
