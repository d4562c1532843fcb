"""REST and GraphQL agree on every outcome: one table, each row driven through both doors.

Each row is an operation, its inputs and the one outcome both doors must give, on both
databases. A door's answer is read into an `Outcome` (kind, field, message, retry-after,
revealed value); a row that names a field or a message pins it, so if either door changes
what one case means, its row fails. A new outcome is one new row.

The second table does the same for refusals made before any resolver or route runs
(body too large, wrong method, not JSON, …): the same HTTP status on both doors, each in
its own shape, GraphQL's with a code.
"""

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from api.domain import crypto
from api.settings import Settings
from api.storage.database import Database, create_engine
from api.storage.statements import columns, secrets_table
from tests.servers import free_port

PASSPHRASE = "canary-passphrase-d00r"
SECRET = "canary-secret-d00r"
LONE_SURROGATE = "\ud800"
MALFORMED_KEY = "not-a-key"


@dataclass(frozen=True)
class Outcome:
    """What an answer means, whichever door gave it. `None` in an expected row: not pinned."""

    kind: str
    field: str | None = None
    message: str | None = None
    retry_after: int | None = None
    value: str | None = None

    def matches(self, actual: "Outcome") -> bool:
        """Whether `actual` agrees with every part this expectation pins."""
        return all(
            expected is None or expected == getattr(actual, name)
            for name, expected in self.__dict__.items()
        )


NOT_FOUND = Outcome("not_found", message="Secret not found")


def invalid(name: str | None, message: str | None = None) -> Outcome:
    """Invalid input on `name` (snake_case), with the service's message."""
    return Outcome("invalid", field=name, message=message)


def _snake(name: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in name)


def _json(payload: object) -> bytes:
    # ensure_ascii keeps lone surrogates as escapes, as a client in another language sends them.
    return json.dumps(payload, ensure_ascii=True).encode()


JSON = {"content-type": "application/json"}


# -- The two doors, read into outcomes ----------------------------------------------------------


def _rest_outcome(response: httpx.Response, success: str) -> Outcome:
    if response.status_code in (200, 204):
        body = response.json() if response.content else {}
        return Outcome(success, value=body.get("secret") or body.get("secret_key"))
    body = response.json()
    retry_after = response.headers.get("retry-after")
    if response.status_code == 404:
        return Outcome("not_found", message=body["detail"])
    if response.status_code == 422:
        (error,) = body["detail"]
        return Outcome("invalid", field=str(error["loc"][-1]), message=error["msg"])
    if response.status_code in (429, 503):
        kind = "rate_limited" if response.status_code == 429 else "unavailable"
        assert retry_after is not None
        return Outcome(kind, message=body["detail"], retry_after=int(retry_after))
    raise AssertionError(f"unexpected REST answer {response.status_code}: {response.text}")


class Rest:
    """The REST door."""

    name = "rest"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def create(self, **arguments: Any) -> Outcome:
        response = await self.client.post("/generate", content=_json(arguments), headers=JSON)
        return _rest_outcome(response, "created")

    async def reveal(self, key: str, passphrase: str) -> Outcome:
        body = _json({"passphrase": passphrase})
        response = await self.client.post(f"/secrets/{key}", content=body, headers=JSON)
        return _rest_outcome(response, "revealed")

    async def burn(self, key: str, passphrase: str) -> Outcome:
        body = _json({"passphrase": passphrase})
        response = await self.client.request(
            "DELETE", f"/secrets/{key}", content=body, headers=JSON
        )
        return _rest_outcome(response, "burned")


_MUTATIONS = {
    "createSecret": (
        "mutation($secret: String!, $passphrase: String!, $ttlSeconds: Int) {"
        " createSecret(secret: $secret, passphrase: $passphrase, ttlSeconds: $ttlSeconds) {"
        " __typename ... on CreatedSecret { secretKey } ... on InvalidInput { field message }"
        " } }"
    ),
    "revealSecret": (
        "mutation($secretKey: String!, $passphrase: String!) {"
        " revealSecret(secretKey: $secretKey, passphrase: $passphrase) {"
        " __typename ... on RevealedSecret { secret } ... on SecretNotFound { message }"
        " ... on InvalidInput { field message } } }"
    ),
    "burnSecret": (
        "mutation($secretKey: String!, $passphrase: String!) {"
        " burnSecret(secretKey: $secretKey, passphrase: $passphrase) {"
        " __typename ... on BurnedSecret { secretKey } ... on SecretNotFound { message }"
        " ... on InvalidInput { field message } } }"
    ),
}
_SUCCESS = {"CreatedSecret": "created", "RevealedSecret": "revealed", "BurnedSecret": "burned"}


class GraphQL:
    """The GraphQL door."""

    name = "graphql"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _run(self, mutation: str, variables: dict[str, Any]) -> Outcome:
        body = _json({"query": _MUTATIONS[mutation], "variables": variables})
        response = await self.client.post("/graphql", content=body, headers=JSON)
        payload = response.json()
        if payload.get("errors"):
            (error,) = payload["errors"]
            code = error["extensions"]["code"]
            retry_after = error["extensions"].get("retryAfterSeconds")
            if code == "BAD_USER_INPUT":  # the type system refused a variable
                return Outcome("invalid", message=error["message"])
            kinds = {"RATE_LIMITED": "rate_limited", "SERVICE_UNAVAILABLE": "unavailable"}
            assert code in kinds, payload
            expected_status = 429 if code == "RATE_LIMITED" else 503
            assert response.status_code == expected_status
            assert response.headers["retry-after"] == str(retry_after)
            return Outcome(kinds[code], message=error["message"], retry_after=retry_after)
        assert response.status_code == 200, response.text
        result = payload["data"][mutation]
        typename = result["__typename"]
        if typename in _SUCCESS:
            return Outcome(
                _SUCCESS[typename], value=result.get("secret") or result.get("secretKey")
            )
        if typename == "SecretNotFound":
            return Outcome("not_found", message=result["message"])
        assert typename == "InvalidInput", payload
        return Outcome("invalid", field=_snake(result["field"]), message=result["message"])

    async def create(self, **arguments: Any) -> Outcome:
        names = {"secret": "secret", "passphrase": "passphrase", "ttl_seconds": "ttlSeconds"}
        return await self._run(
            "createSecret", {names[key]: value for key, value in arguments.items()}
        )

    async def reveal(self, key: str, passphrase: str) -> Outcome:
        return await self._run("revealSecret", {"secretKey": key, "passphrase": passphrase})

    async def burn(self, key: str, passphrase: str) -> Outcome:
        return await self._run("burnSecret", {"secretKey": key, "passphrase": passphrase})


Door = Rest | GraphQL


@pytest.fixture(params=["rest", "graphql"])
def door(request: pytest.FixtureRequest, client: httpx.AsyncClient) -> Door:
    """Each door in turn, over the same in-process client."""
    return Rest(client) if request.param == "rest" else GraphQL(client)


# -- The table of outcomes --------------------------------------------------------------------


async def _stored_key(db: Database, door: Door) -> str:
    created = await door.create(secret=SECRET, passphrase=PASSPHRASE)
    assert created.kind == "created", created
    assert created.value is not None
    return created.value


async def _attempts(db: Database, key: str) -> int | None:
    rows = await db.fetch(
        select(columns.failed_attempts).where(columns.lookup_hash == crypto.lookup_hash(key))
    )
    return int(rows[0][0]) if rows else None


async def _expire(db: Database, key: str) -> None:
    await db.fetch(
        update(secrets_table)
        .where(columns.lookup_hash == crypto.lookup_hash(key))
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )


Step = Callable[[Door, Database], Awaitable[Outcome]]


@dataclass(frozen=True)
class Row:
    """One case: how to reach it through a door, and the outcome both doors must give."""

    name: str
    run: Step
    expected: Outcome
    settings: dict[str, str] = field(default_factory=dict)


def create_with(**arguments: Any) -> Step:
    async def step(door: Door, db: Database) -> Outcome:
        return await door.create(**arguments)

    return step


def reveal_stored(passphrase: str, *, before: str = "", check_untouched: bool = False) -> Step:
    """Reveal a freshly stored secret; `before` prepares it: reveal, burn or expire it."""

    async def step(door: Door, db: Database) -> Outcome:
        key = await _stored_key(db, door)
        if before == "revealed":
            assert (await door.reveal(key, PASSPHRASE)).kind == "revealed"
        elif before == "expired":
            await _expire(db, key)
        outcome = await door.reveal(key, passphrase)
        if check_untouched:
            # Refused before any attempt was claimed, and the secret is still there.
            assert await _attempts(db, key) == 0
        return outcome

    return step


def reveal_key(key: str) -> Step:
    async def step(door: Door, db: Database) -> Outcome:
        return await door.reveal(key, PASSPHRASE)

    return step


def burn_stored(passphrase: str, *, check_untouched: bool = False) -> Step:
    async def step(door: Door, db: Database) -> Outcome:
        key = await _stored_key(db, door)
        outcome = await door.burn(key, passphrase)
        if check_untouched:
            assert await _attempts(db, key) == 0
        return outcome

    return step


def twice(step: Step) -> Step:
    """Run `step` twice and keep the second outcome (the first spends a one-hit limit)."""

    async def run(door: Door, db: Database) -> Outcome:
        await step(door, db)
        return await step(door, db)

    return run


TOO_MANY = "Too many requests: retry after the number of seconds in Retry-After"
UNAVAILABLE = Outcome(
    "unavailable",
    message="Service temporarily unavailable: the database does not answer",
    retry_after=5,
)
NOT_TEXT = "must be valid Unicode text"
ROWS = [
    # Created.
    Row("create", create_with(secret=SECRET, passphrase=PASSPHRASE), Outcome("created")),
    Row(
        "create with a lifetime",
        create_with(secret=SECRET, passphrase=PASSPHRASE, ttl_seconds=60),
        Outcome("created"),
    ),
    Row(
        "create with an integral float lifetime",
        create_with(secret=SECRET, passphrase=PASSPHRASE, ttl_seconds=60.0),
        Outcome("created"),
    ),
    # Invalid input on create: the field and the service's message, never the value.
    Row(
        "create, empty secret",
        create_with(secret="", passphrase=PASSPHRASE),
        invalid("secret", "secret must not be empty"),
    ),
    Row(
        "create, secret over the limit",
        create_with(secret=SECRET, passphrase=PASSPHRASE),
        invalid("secret", "secret must be at most 10 bytes of UTF-8"),
        {"MAX_SECRET_BYTES": "10"},
    ),
    Row(
        "create, lone surrogate in the secret",
        create_with(secret=LONE_SURROGATE, passphrase=PASSPHRASE),
        invalid("secret", f"secret {NOT_TEXT}"),
    ),
    Row(
        "create, empty passphrase",
        create_with(secret=SECRET, passphrase=""),
        invalid("passphrase", "passphrase must not be empty"),
    ),
    Row(
        "create, passphrase over the limit",
        create_with(secret=SECRET, passphrase="p" * 1025),
        invalid("passphrase", "passphrase must be at most 1024 characters"),
    ),
    Row(
        "create, lone surrogate in the passphrase",
        create_with(secret=SECRET, passphrase=LONE_SURROGATE),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
    Row(
        "create, lifetime too short",
        create_with(secret=SECRET, passphrase=PASSPHRASE, ttl_seconds=59),
        invalid("ttl_seconds", "ttl_seconds must be between 60 and 2592000"),
    ),
    # The wrong JSON type: GraphQL's type system refuses it before any resolver, so the
    # field is pinned on neither door; both mean "invalid input".
    *(
        Row(
            f"create, lifetime as {value!r}",
            create_with(secret=SECRET, passphrase=PASSPHRASE, ttl_seconds=value),
            invalid(None),
        )
        for value in ("60", " 60 ", "6_0", True, 60.5)
    ),
    # Revealed, once.
    Row("reveal", reveal_stored(PASSPHRASE), Outcome("revealed", value=SECRET)),
    # Not found: one answer, whatever the cause.
    Row("reveal, already revealed", reveal_stored(PASSPHRASE, before="revealed"), NOT_FOUND),
    Row("reveal, expired", reveal_stored(PASSPHRASE, before="expired"), NOT_FOUND),
    Row("reveal, wrong passphrase", reveal_stored("wrong"), NOT_FOUND),
    Row("reveal, unknown key", reveal_key(uuid.uuid4().hex), NOT_FOUND),
    Row("reveal, malformed key", reveal_key(MALFORMED_KEY), NOT_FOUND),
    # Invalid passphrases on reveal and burn: refused before any attempt is claimed.
    Row(
        "reveal, empty passphrase",
        reveal_stored("", check_untouched=True),
        invalid("passphrase", "passphrase must not be empty"),
    ),
    Row(
        "reveal, passphrase over the limit",
        reveal_stored("p" * 1025, check_untouched=True),
        invalid("passphrase", "passphrase must be at most 1024 characters"),
    ),
    Row(
        "reveal, lone surrogate passphrase",
        reveal_stored(LONE_SURROGATE, check_untouched=True),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
    Row("burn", burn_stored(PASSPHRASE), Outcome("burned")),
    Row("burn, wrong passphrase", burn_stored("wrong"), NOT_FOUND),
    Row(
        "burn, empty passphrase",
        burn_stored("", check_untouched=True),
        invalid("passphrase", "passphrase must not be empty"),
    ),
    Row(
        "burn, lone surrogate passphrase",
        burn_stored(LONE_SURROGATE, check_untouched=True),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
    # Rate limited: the same message and Retry-After on both doors.
    Row(
        "create, rate limited",
        twice(create_with(secret=SECRET, passphrase=PASSPHRASE)),
        Outcome("rate_limited", message=TOO_MANY, retry_after=None),
        {"RATE_LIMIT_CREATE": "1/hour"},
    ),
    Row(
        "reveal, rate limited",
        twice(reveal_key(uuid.uuid4().hex)),
        Outcome("rate_limited", message=TOO_MANY, retry_after=None),
        {"RATE_LIMIT_REVEAL": "1/hour"},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
async def test_both_doors_give_the_same_outcome(
    row: Row, door: Door, db: Database, configure: Any
) -> None:
    # A key prefix of this test alone, so rate-limit counts start at zero for each door.
    configure(RATE_LIMIT_KEY_PREFIX=f"doors-{uuid.uuid4().hex[:8]}", **row.settings)
    outcome = await row.run(door, db)
    assert row.expected.matches(outcome), f"{door.name}: {outcome}"
    for text in (outcome.field, outcome.message):
        assert PASSPHRASE not in str(text)
        assert LONE_SURROGATE not in str(text)
    if outcome.kind == "rate_limited":
        assert outcome.retry_after is not None
        assert 1 <= outcome.retry_after <= 3600


@pytest.fixture
async def unreachable_database(app: FastAPI, backend: str, tmp_path: Any) -> AsyncIterator[None]:
    """Point the running app at a real database that cannot be reached."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/no/such/folder/secrets.db"
    else:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
    down = Database(create_engine(Settings(database_url=url, db_pool_timeout_seconds=2)))
    working, app.state.database = app.state.database, down
    try:
        yield
    finally:
        app.state.database = working
        await down.aclose()


UNAVAILABLE_STEPS: dict[str, Step] = {
    "create": create_with(secret=SECRET, passphrase=PASSPHRASE),
    "reveal": reveal_key(uuid.uuid4().hex),
    "burn": lambda door, db: door.burn(uuid.uuid4().hex, PASSPHRASE),
}


@pytest.mark.usefixtures("unreachable_database")
@pytest.mark.parametrize("operation", UNAVAILABLE_STEPS)
async def test_both_doors_say_unavailable_alike(
    operation: str, door: Door, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    outcome = await UNAVAILABLE_STEPS[operation](door, db)
    assert UNAVAILABLE.matches(outcome), f"{door.name}: {outcome}"
    # A warning without a traceback: the service is fine, its database is not.
    records = [record for record in caplog.records if record.levelname in ("WARNING", "ERROR")]
    assert records
    assert all(record.levelname == "WARNING" and not record.exc_info for record in records)


# -- Refusals before any route runs ---------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A malformed request, sent to each door's endpoint; both answer `status`."""

    name: str
    status: int
    method: str = "POST"
    content: bytes = b"{}"
    content_type: str | None = "application/json"
    settings: dict[str, str] = field(default_factory=dict)


REFUSALS = [
    Refusal("body too large", 413, content=b" " * 2049, settings={"MAX_REQUEST_BYTES": "2048"}),
    Refusal("wrong method", 405, method="PUT"),
    Refusal("not JSON", 415, content_type="text/plain"),
    Refusal("no content type", 415, content_type=None),
    Refusal("JSON only named in a parameter", 415, content_type="text/plain; x=application/json"),
    Refusal("empty body", 400, content=b""),
    Refusal("malformed JSON", 400, content=b'{"a": '),
    Refusal("not UTF-8", 400, content=b'{"a": "\xff"}'),
    Refusal("not an object", 400, content=b"[1]"),
    Refusal("an integer too long to parse", 400, content=b'{"a": ' + b"1" * 5000 + b"}"),
]
ENDPOINTS = {"rest": f"/secrets/{'0' * 32}", "graphql": "/graphql"}


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.name for refusal in REFUSALS])
@pytest.mark.parametrize("door_name", ENDPOINTS)
async def test_both_doors_refuse_malformed_requests_alike(
    refusal: Refusal, door_name: str, client: httpx.AsyncClient, configure: Any
) -> None:
    configure(**refusal.settings)
    headers = {"content-type": refusal.content_type} if refusal.content_type else {}
    response = await client.request(
        refusal.method, ENDPOINTS[door_name], content=refusal.content, headers=headers
    )
    assert response.status_code == refusal.status, response.text
    body = response.json()
    if door_name == "graphql":
        (error,) = body["errors"]
        assert isinstance(error["message"], str)
        assert error["extensions"]["code"]
    else:
        assert isinstance(body["detail"], str)


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "application/json; charset=UTF-8"])
@pytest.mark.parametrize("door_name", ENDPOINTS)
async def test_media_types_are_parsed_not_matched(
    content_type: str, door_name: str, client: httpx.AsyncClient
) -> None:
    payload = {"passphrase": PASSPHRASE} if door_name == "rest" else {"query": "{ __typename }"}
    response = await client.post(
        ENDPOINTS[door_name], content=_json(payload), headers={"content-type": content_type}
    )
    assert response.status_code in (200, 404), response.text


async def test_timestamps_are_written_alike(client: httpx.AsyncClient) -> None:
    rest = await client.post("/generate", json={"secret": SECRET, "passphrase": PASSPHRASE})
    query = (
        'mutation { createSecret(secret: "s", passphrase: "p") '
        "{ ... on CreatedSecret { expiresAt } } }"
    )
    graphql = await client.post("/graphql", json={"query": query})
    for text in (rest.json()["expires_at"], graphql.json()["data"]["createSecret"]["expiresAt"]):
        assert len(text) == 20
        assert text.endswith("Z")
        assert datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
