"""A client that hangs up never costs a secret an attempt it did not use (real uvicorn).

A hang-up cancels the request wherever it is (`api.http.disconnect`). Whatever point it
hits, the secret ends as if the attempt was never made, or, once the passphrase is known to
be wrong, with that failure counted on the secret and on its receipt alike; a secret whose
attempts are used up is gone and its receipt says `destroyed` with the true count.

The points are reached by holding what the server needs, never by timing: a lock makes the
claim (or the write after the check) wait, and on PostgreSQL the test sees it waiting in
`pg_stat_activity`; a slow argon2 keeps the check running while the test sees the claim
committed. The test then waits for the server to log the cancellation and the request's end
(status 499) before it looks at the database.
"""

import asyncio
import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from api.domain import crypto
from harness.uvicorn import Uvicorn
from tests.system.servers import run_server

MAX_ATTEMPTS = 5
RIGHT = "the right passphrase"
SECRET = "hang-up proof"
# A check that takes a few hundred milliseconds: the window the test hangs up in.
SLOW_ARGON2 = {"ARGON2_MEMORY_KIB": "19456", "ARGON2_TIME_COST": "12"}
# Generous: a loaded machine is slow, and a wait that runs out fails the test loudly.
WAIT_SECONDS = 120
REVEAL_QUERY = (
    "mutation($k: String!, $p: String!) { revealSecret(secretKey: $k, passphrase: $p) "
    "{ __typename ... on RevealedSecret { secret } } }"
)
CANCELLED = "its request is cancelled"
# The access line of a request's end, with its status (499: it ended with no answer).
ENDED = r"POST \S+ (\d{3}) "
POSTGRES_ONLY = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


@pytest.fixture(scope="module")
def server(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    log = tmp_path_factory.mktemp("hangups") / "uvicorn.log"
    env = {
        "DATABASE_URL": module_database_url,
        "LOG_LEVEL": "DEBUG",
        "SERVER_LOG": str(log),
        "MAX_FAILED_ATTEMPTS": str(MAX_ATTEMPTS),
        # The test holds locks the server waits for: no statement bound may end that wait.
        "DB_POOL_TIMEOUT_SECONDS": str(WAIT_SECONDS),
        **SLOW_ARGON2,
    }
    with run_server(env) as running:
        yield running


@dataclass
class Created:
    key: str
    receipt_key: str


class Store:
    """Reads a secret's attempt counter straight from the database, and holds its locks."""

    def __init__(self, database_url: str) -> None:
        self.sqlite = database_url.startswith("sqlite")
        self.path = database_url.split("///", 1)[1] if self.sqlite else ""
        self.dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        self.name = urlsplit(self.dsn).path.lstrip("/")

    async def _one(self, query: str, *args: Any) -> tuple[Any, ...] | None:
        if self.sqlite:
            with contextlib.closing(sqlite3.connect(self.path)) as lite:
                row = lite.execute(query.replace("$1", "?"), args).fetchone()
            return None if row is None else tuple(row)
        connection = await asyncpg.connect(self.dsn)
        try:
            record = await connection.fetchrow(query, *args)
        finally:
            await connection.close()
        return None if record is None else tuple(record)

    async def attempts(self, key: str) -> int | None:
        """The secret's claimed attempts, or None once it is gone."""
        row = await self._one(
            "SELECT failed_attempts FROM secrets WHERE lookup_hash = $1", crypto.lookup_hash(key)
        )
        return None if row is None else int(row[0])

    async def usage_matches_table(self) -> bool:
        """Whether the storage quota's kept totals equal the secrets table's."""
        kept = await self._one(
            "SELECT coalesce(sum(stored_bytes), 0), coalesce(sum(stored_secrets), 0) "
            "FROM storage_usage"
        )
        real = await self._one("SELECT coalesce(sum(length(ciphertext)), 0), count(*) FROM secrets")
        return kept == real

    @contextlib.asynccontextmanager
    async def row_locked(self, key: str) -> AsyncIterator[None]:
        """Hold the secret's row lock (PostgreSQL): a claim or a deletion of it waits."""
        connection = await asyncpg.connect(self.dsn)
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute(
                "SELECT 1 FROM secrets WHERE lookup_hash = $1 FOR UPDATE", crypto.lookup_hash(key)
            )
            yield
        finally:
            await transaction.rollback()
            await connection.close()

    async def someone_waits_for_a_lock(self) -> bool:
        """Whether a session of this database waits for a lock now (PostgreSQL)."""
        row = await self._one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            self.name,
        )
        return row is not None and int(row[0]) > 0


@pytest.fixture
def store(module_database_url: str) -> Store:
    # The server's own database: the quota's totals are checked against the whole table.
    return Store(module_database_url)


async def create(server: Uvicorn) -> Created:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_SECONDS) as http:
        body = (await http.post("/generate", json={"secret": SECRET, "passphrase": RIGHT})).json()
    return Created(body["secret_key"], body["receipt_key"])


async def receipt(server: Uvicorn, created: Created) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_SECONDS) as http:
        return dict((await http.get(f"/receipts/{created.receipt_key}")).json())


async def reveal(server: Uvicorn, created: Created, passphrase: str = RIGHT) -> int:
    """Reveal over REST, waiting for the answer; return the status."""
    async with httpx.AsyncClient(base_url=server.url, timeout=WAIT_SECONDS) as http:
        response = await http.post(f"/secrets/{created.key}", json={"passphrase": passphrase})
    if response.status_code == 200:
        assert response.json() == {"secret": SECRET}
    return response.status_code


class Request:
    """One reveal sent over a raw socket, so the test decides when the client hangs up."""

    def __init__(self, server: Uvicorn, door: str, key: str, passphrase: str) -> None:
        self.server = server
        self.request_id = uuid.uuid4().hex
        body: dict[str, Any]
        if door == "rest":
            self.path, body = f"/secrets/{key}", {"passphrase": passphrase}
        else:
            variables = {"k": key, "p": passphrase}
            self.path, body = "/graphql", {"query": REVEAL_QUERY, "variables": variables}
        self.body = json.dumps(body).encode()
        self.writer: asyncio.StreamWriter | None = None

    async def send(self) -> "Request":
        address = urlsplit(self.server.url)
        _, self.writer = await asyncio.open_connection(address.hostname, address.port)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
            f"X-Request-ID: {self.request_id}\r\nConnection: close\r\n\r\n"
        )
        self.writer.write(head.encode() + self.body)
        await self.writer.drain()
        return self

    async def hang_up(self) -> None:
        assert self.writer is not None
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    async def logged(self, pattern: str) -> re.Match[str]:
        """Wait until the server logs a line of this request matching `pattern`."""
        wanted = re.compile(rf"\[{self.request_id}\] .*{pattern}")
        for _ in range(WAIT_SECONDS * 50):
            found = wanted.search(self.server.log())
            if found:
                return found
            await asyncio.sleep(0.02)  # polling the log file, not waiting for time to pass
        raise AssertionError(f"the server never logged {pattern!r} for {self.request_id}")

    async def has_ended(self) -> bool:
        """Whether the server has logged this request's end."""
        return re.search(rf"\[{self.request_id}\] .*{ENDED}", self.server.log()) is not None

    async def cancelled(self) -> None:
        """Wait until the server has noticed the hang-up and cancelled the request."""
        await self.logged(CANCELLED)

    async def ended(self) -> int:
        """Wait until the request's handling is over; return its logged status (499: none)."""
        return int((await self.logged(ENDED)).group(1))


async def until(condition: Any, *, unless: Any = None) -> bool:
    """Poll `condition()` until true (True), or until `unless()` is true first (False)."""
    for _ in range(WAIT_SECONDS * 50):
        if await condition():
            return True
        if unless is not None and await unless():
            return False
        await asyncio.sleep(0.02)
    raise AssertionError("the awaited state never came")


async def assert_agree(server: Uvicorn, store: Store, created: Created) -> dict[str, Any]:
    """The secret's counter and its receipt's never disagree, nor the quota and the table."""
    state = await receipt(server, created)
    attempts = await store.attempts(created.key)
    if attempts is not None:
        assert state["status"] == "pending"
        assert state["failed_attempts"] == attempts
    assert await store.usage_matches_table()
    return state


DOORS = pytest.mark.parametrize("door", ["rest", "graphql"])


@DOORS
async def test_a_hang_up_during_the_check_gives_the_attempt_back(
    server: Uvicorn, store: Store, door: str
) -> None:
    created = await create(server)
    for _ in range(3):  # a check that ends before the hang-up is noticed is tried again
        claimed = 1 + (await store.attempts(created.key) or 0)
        request = await Request(server, door, created.key, "wrong").send()
        await until(lambda claimed=claimed: _has(store, created.key, claimed))
        await request.hang_up()
        if await request.ended() == 499:
            break
    else:
        pytest.fail("no hang-up reached the server during a check in 3 tries")
    state = await assert_agree(server, store, created)
    # Every check that was answered counted; the one cut short did not.
    assert await store.attempts(created.key) == state["failed_attempts"] == claimed - 1
    assert await reveal(server, created) == 200
    state = await receipt(server, created)
    assert (state["status"], state["failed_attempts"]) == ("revealed", claimed - 1)


async def _has(store: Store, key: str, attempts: int) -> bool:
    return await store.attempts(key) == attempts


@DOORS
async def test_a_hang_up_before_the_claim_finishes_leaves_the_secret_as_it_was(
    server: Uvicorn, store: Store, door: str, backend: str
) -> None:
    created = await create(server)
    if backend == "postgres":
        async with store.row_locked(created.key):
            request = await Request(server, door, created.key, "wrong").send()
            await until(store.someone_waits_for_a_lock)  # the claim waits for the row
            await request.hang_up()
            await request.cancelled()
        # The claim commits now that the row is free, and is given back.
    else:
        with contextlib.closing(sqlite3.connect(store.path, isolation_level=None)) as lock:
            lock.execute("BEGIN IMMEDIATE")  # every write waits, the claim's included
            request = await Request(server, door, created.key, "wrong").send()
            await request.hang_up()
            await request.cancelled()
            lock.execute("ROLLBACK")
    assert await request.ended() == 499
    state = await assert_agree(server, store, created)
    assert (state["status"], state["failed_attempts"]) == ("pending", 0)
    assert await store.attempts(created.key) == 0
    assert await reveal(server, created) == 200


async def _use_attempts(server: Uvicorn, created: Created, count: int) -> None:
    for _ in range(count):
        assert await reveal(server, created, "wrong") == 404


async def _hang_up_while_its_write_waits(
    server: Uvicorn, store: Store, door: str, used: int, passphrase: str
) -> Created:
    """Spend `used` wrong attempts, then hang up a check whose write after it waits (PostgreSQL).

    The check runs a slow argon2 while the test takes the secret's row lock, so the write
    that follows the check waits for it; the hang-up comes while it waits. A check that ends
    before the lock is taken is tried again on a new secret.
    """
    for _ in range(3):
        created = await create(server)
        await _use_attempts(server, created, used)
        request = await Request(server, door, created.key, passphrase).send()
        await until(lambda created=created: _has(store, created.key, used + 1))
        async with store.row_locked(created.key):
            if await until(store.someone_waits_for_a_lock, unless=request.has_ended):
                await request.hang_up()
                await request.cancelled()
        if await request.ended() == 499:
            return created
    pytest.fail("no check was still running when the lock was taken, in 3 tries")


@POSTGRES_ONLY
@DOORS
async def test_a_hang_up_after_the_last_wrong_check_destroys_with_the_true_count(
    server: Uvicorn, store: Store, door: str
) -> None:
    created = await _hang_up_while_its_write_waits(server, store, door, MAX_ATTEMPTS - 1, "wrong")
    state = await assert_agree(server, store, created)
    assert await store.attempts(created.key) is None
    assert (state["status"], state["failed_attempts"]) == ("destroyed", MAX_ATTEMPTS)


@POSTGRES_ONLY
@DOORS
async def test_a_hang_up_after_the_right_check_reveals_once(
    server: Uvicorn, store: Store, door: str
) -> None:
    """The secret was the client's once its check passed: it is revealed, never half taken."""
    created = await _hang_up_while_its_write_waits(server, store, door, 2, RIGHT)
    state = await assert_agree(server, store, created)
    assert await store.attempts(created.key) is None
    assert (state["status"], state["failed_attempts"]) == ("revealed", 2)
    assert await reveal(server, created) == 404


@DOORS
@pytest.mark.parametrize("passphrase", ["wrong", RIGHT])
async def test_hang_ups_at_any_moment_never_lose_the_secret(
    server: Uvicorn, store: Store, door: str, passphrase: str
) -> None:
    """The attack from the report (wrong passphrase) and an impatient recipient (right one).

    Eight requests, each hung up at another moment from right after sending to after the
    check; whatever each one hit, the counters agree and the secret is either still there
    for the right passphrase, or revealed once, or destroyed by five counted failures.
    """
    created = await create(server)
    answered_wrong = 0
    for moment in (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4):
        request = await Request(server, door, created.key, passphrase).send()
        await asyncio.sleep(moment)  # when this client gives up: the input, not a wait
        await request.hang_up()
        status = await request.ended()
        answered_wrong += status != 499 and passphrase != RIGHT
        await assert_agree(server, store, created)
    state = await receipt(server, created)
    assert state["failed_attempts"] >= min(answered_wrong, MAX_ATTEMPTS)
    if state["status"] == "destroyed":
        assert passphrase != RIGHT
        assert state["failed_attempts"] == MAX_ATTEMPTS
    elif state["status"] == "revealed":
        assert passphrase == RIGHT  # to a client that had hung up by the time it was sent
        assert state["failed_attempts"] == 0
    else:
        assert state["status"] == "pending"
        assert await reveal(server, created) == 200
