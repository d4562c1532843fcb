"""REST and GraphQL agree on every outcome: one table, each row driven through both doors.

Each row is an operation, its inputs and the one outcome both doors must give, on both
databases. A door's answer is read into an `Outcome` (kind, field, message, retry-after,
revealed value); a row that names a field or a message pins it, so if either door changes
what one case means, its row fails. A new outcome is one new row.

A third table drives the passphrase cases through the original API's query-string forms
too (`GET` and `DELETE` with `?passphrase=`), beside both doors.

The last table does the same for refusals made before any resolver or route runs (body too
large, wrong method, not JSON, a repeated key, header fields too large, …): the same HTTP
status and the same words on both doors, each in its own shape, GraphQL's with a code.
"""

import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from api.domain import creators, crypto, service
from api.domain.errors import Unauthenticated
from api.http.media_types import NOT_AN_OBJECT, NOT_JSON, NOT_JSON_MEDIA_TYPE, REPEATED_KEY
from api.settings import Settings
from api.storage.database import Database, create_engine
from api.storage.statements import receipts_table, secret_columns, secrets_table
from harness.ports import free_port
from tests.doors import (
    NOT_FOUND,
    PASSPHRASE,
    RECEIPT_NOT_FOUND,
    SECRET,
    Door,
    GraphQL,
    Outcome,
    Rest,
    RestQuery,
    invalid,
    json_body,
)

LONE_SURROGATE = "\ud800"
MALFORMED_KEY = "not-a-key"
# The running test's `configure`, for a step that changes a setting halfway through its row.
CONFIGURE: contextvars.ContextVar[Callable[..., Settings]] = contextvars.ContextVar("configure")


@pytest.fixture(params=["rest", "graphql"])
def door(request: pytest.FixtureRequest, client: httpx.AsyncClient) -> Door:
    """Each door in turn, over the same in-process client."""
    return Rest(client) if request.param == "rest" else GraphQL(client)


# -- The table of outcomes --------------------------------------------------------------------


async def _stored_key(db: Database, door: Door) -> str:
    return (await _stored(door))[0]


async def _stored(door: Door) -> tuple[str, str]:
    created = await door.create(secret=SECRET, passphrase=PASSPHRASE)
    assert created.kind == "created", created
    assert created.value is not None
    assert created.receipt_key is not None
    return created.value, created.receipt_key


async def _attempts(db: Database, key: str) -> int | None:
    rows = await db.execute(
        select(secret_columns.failed_attempts).where(
            secret_columns.lookup_hash == crypto.lookup_hash(key)
        )
    )
    return int(rows[0][0]) if rows else None


async def _expire(db: Database, key: str) -> None:
    await db.execute(
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(key))
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


def receipt_after(before: str = "") -> Step:
    """Read the receipt of a fresh secret after the recipient or the sender acted on it."""

    async def step(door: Door, db: Database) -> Outcome:
        key, receipt_key = await _stored(door)
        if before == "revealed":
            await door.reveal(key, PASSPHRASE)
        elif before == "burned":
            await door.burn(key, PASSPHRASE)
        elif before == "revoked":
            await door.revoke(receipt_key)
        return await door.receipt(receipt_key)

    return step


def receipt_notifying(before: str = "") -> Step:
    """Read the receipt of a fresh secret that asked to notify `HOOK`, after `before`."""

    async def step(door: Door, db: Database) -> Outcome:
        created = await door.create(secret=SECRET, passphrase=PASSPHRASE, notify_url=HOOK)
        assert created.kind == "created", created
        assert created.value is not None
        assert created.receipt_key is not None
        assert created.public_id is not None
        assert created.public_id.startswith("rcpt_")
        if before == "revealed":
            await door.reveal(created.value, PASSPHRASE)
        receipt = await door.receipt(created.receipt_key)
        # The receipt names the same public id the create returned.
        assert receipt.public_id == created.public_id, receipt
        return receipt

    return step


def revoke_then(then: str) -> Step:
    """Revoke a fresh secret; `then` the recipient reveals it, or the sender revokes again."""

    async def step(door: Door, db: Database) -> Outcome:
        key, receipt_key = await _stored(door)
        revoked = await door.revoke(receipt_key)
        assert revoked.value == "revoked", revoked
        if then == "reveal":
            return await door.reveal(key, PASSPHRASE)
        return await door.revoke(receipt_key)

    return step


def receipt_by(which: str) -> Step:
    """Look up a receipt with the wrong kind of key, or reveal with a receipt key."""

    async def step(door: Door, db: Database) -> Outcome:
        key, receipt_key = await _stored(door)
        if which == "secret key":
            return await door.receipt(key)
        if which == "malformed":
            return await door.receipt(MALFORMED_KEY)
        if which == "unknown":
            return await door.revoke(uuid.uuid4().hex)
        return await door.reveal(receipt_key, PASSPHRASE)

    return step


async def _token(db: Database, *, rate: str | None = None, revoked: bool = False) -> str:
    name = f"doors-{uuid.uuid4().hex[:12]}"
    token = await creators.issue_token(db=db, name=name, rate_limit=rate)
    if revoked:
        await creators.revoke_token(db=db, name=name)
    return token


def create_with_token(which: str, *, rate: str | None = None, times: int = 1) -> Step:
    """Create in token mode with no token, an unknown, a malformed, a revoked or a valid one.

    With `times`, the same token creates that many times; the last outcome counts.
    """

    async def step(door: Door, db: Database) -> Outcome:
        token = {
            "none": None,
            "unknown": "ots_" + "A" * 43,
            "malformed": "not-a-token",
        }.get(which)
        if which in ("valid", "revoked"):
            token = await _token(db, rate=rate, revoked=which == "revoked")
        for _ in range(times - 1):
            await door.create(secret=SECRET, passphrase=PASSPHRASE, token=token)
        return await door.create(secret=SECRET, passphrase=PASSPHRASE, token=token)

    return step


def another_token_after_one_is_spent() -> Step:
    """Spend a token's one create, then create with a second token from the same address."""

    async def step(door: Door, db: Database) -> Outcome:
        first, second = await _token(db, rate="1/hour"), await _token(db, rate="1/hour")
        assert (await door.create(secret=SECRET, passphrase=PASSPHRASE, token=first)).kind == (
            "created"
        )
        spent = await door.create(secret=SECRET, passphrase=PASSPHRASE, token=first)
        assert spent.kind == "rate_limited", spent
        return await door.create(secret=SECRET, passphrase=PASSPHRASE, token=second)

    return step


def anonymous_after_token_create(then: str) -> Step:
    """Create with a token; the recipient reveals, or the sender reads the receipt, without."""

    async def step(door: Door, db: Database) -> Outcome:
        token = await _token(db)
        created = await door.create(secret=SECRET, passphrase=PASSPHRASE, token=token)
        assert created.value is not None
        assert created.receipt_key is not None
        if then == "reveal":
            return await door.reveal(created.value, PASSPHRASE)
        return await door.receipt(created.receipt_key)

    return step


async def _stored_counts(db: Database) -> tuple[int, int]:
    secrets = await db.execute(select(func.count()).select_from(secrets_table))
    receipts = await db.execute(select(func.count()).select_from(receipts_table))
    return int(secrets[0][0]), int(receipts[0][0])


def create_at_full_store() -> Step:
    """Create when the store is full: refused, and nothing is stored (no secret, no receipt)."""

    async def step(door: Door, db: Database) -> Outcome:
        before = await _stored_counts(db)
        outcome = await door.create(secret=SECRET, passphrase=PASSPHRASE)
        assert await _stored_counts(db) == before
        return outcome

    return step


def reveal_at_full_store() -> Step:
    """Store a secret, fill the store to the brim, then reveal: a full store still reveals."""

    async def step(door: Door, db: Database) -> Outcome:
        key = await _stored_key(db, door)
        _, stored = await service.storage_usage(db=db)
        CONFIGURE.get()(MAX_LIVE_SECRETS=str(stored))  # undone after the test, by `configure`
        assert (await door.create(secret=SECRET, passphrase=PASSPHRASE)).kind == "storage_full"
        return await door.reveal(key, PASSPHRASE)

    return step


def twice(step: Step) -> Step:
    """Run `step` twice and keep the second outcome (the first spends a one-hit limit)."""

    async def run(door: Door, db: Database) -> Outcome:
        await step(door, db)
        return await step(door, db)

    return run


HOOK = "https://hooks.example.com/ots?token=hook-canary"
SIGNING_SECRET = "whsec_" + "A" * 43 + "="
NOTIFYING = {"WEBHOOK_ALLOWED_HOSTS": "hooks.example.com", "WEBHOOK_SIGNING_SECRET": SIGNING_SECRET}


def notify_refused(reason: str | None) -> Outcome:
    """A notify_url the instance refuses, and the rule it breaks."""
    return invalid("notify_url", reason and f"notify_url refused: {reason}")


TOO_MANY = "Too many requests: retry after the number of seconds in Retry-After"
UNAVAILABLE = Outcome(
    "unavailable",
    message="Service temporarily unavailable: the database does not answer",
    retry_after=5,
)
NOT_TEXT = "must be valid Unicode text"
TOKEN_MODE = {"CREATE_AUTH": "token"}
NO_TOKEN = Outcome(
    "unauthenticated", message=Unauthenticated.message, value='Bearer realm="onetime-secrets"'
)
BAD_TOKEN = Outcome(
    "unauthenticated",
    message=Unauthenticated.message,
    value='Bearer realm="onetime-secrets", error="invalid_token"',
)
STORAGE_FULL = Outcome("storage_full", message="Storage quota reached")
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
    # Receipts: the sender's side.
    Row("receipt, pending", receipt_after(), Outcome("receipt", value="pending")),
    Row("receipt, revealed", receipt_after("revealed"), Outcome("receipt", value="revealed")),
    Row("receipt, burned", receipt_after("burned"), Outcome("receipt", value="burned")),
    Row("receipt, revoked", receipt_after("revoked"), Outcome("receipt", value="revoked")),
    Row("reveal after a revoke", revoke_then("reveal"), NOT_FOUND),
    Row("revoke again", revoke_then("revoke"), Outcome("receipt", value="revoked")),
    Row("receipt by a secret key", receipt_by("secret key"), RECEIPT_NOT_FOUND),
    Row("receipt by a malformed key", receipt_by("malformed"), RECEIPT_NOT_FOUND),
    Row("revoke an unknown receipt", receipt_by("unknown"), RECEIPT_NOT_FOUND),
    Row("reveal by a receipt key", receipt_by("receipt key"), NOT_FOUND),
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
    Row(
        "receipt, rate limited",
        twice(receipt_by("malformed")),
        Outcome("rate_limited", message=TOO_MANY, retry_after=None),
        {"RATE_LIMIT_RECEIPT": "1/hour"},
    ),
    # Creator tokens (CREATE_AUTH=token): only creating needs one.
    Row("token mode, valid token", create_with_token("valid"), Outcome("created"), TOKEN_MODE),
    Row("token mode, no token", create_with_token("none"), NO_TOKEN, TOKEN_MODE),
    Row("token mode, unknown token", create_with_token("unknown"), BAD_TOKEN, TOKEN_MODE),
    Row("token mode, malformed token", create_with_token("malformed"), BAD_TOKEN, TOKEN_MODE),
    Row("token mode, revoked token", create_with_token("revoked"), BAD_TOKEN, TOKEN_MODE),
    Row(
        "token mode, reveal needs no token",
        anonymous_after_token_create("reveal"),
        Outcome("revealed", value=SECRET),
        TOKEN_MODE,
    ),
    Row(
        "token mode, receipt needs no token",
        anonymous_after_token_create("receipt"),
        Outcome("receipt", value="pending"),
        TOKEN_MODE,
    ),
    Row(
        "token mode, rate limited per token",
        create_with_token("valid", rate="1/hour", times=2),
        Outcome("rate_limited", message=TOO_MANY, retry_after=None),
        TOKEN_MODE,
    ),
    Row(
        "token mode, the address limit does not apply",
        create_with_token("valid", times=3),
        Outcome("created"),
        {**TOKEN_MODE, "RATE_LIMIT_CREATE": "1/hour"},
    ),
    Row(
        "token mode, refused tokens spend the address limit",
        create_with_token("unknown", times=2),
        Outcome("rate_limited", message=TOO_MANY, retry_after=None),
        {**TOKEN_MODE, "RATE_LIMIT_CREATE": "1/hour"},
    ),
    Row(
        "token mode, another token has its own count",
        another_token_after_one_is_spent(),
        Outcome("created"),
        TOKEN_MODE,
    ),
    Row(
        "open mode ignores a token",
        create_with_token("unknown"),
        Outcome("created"),
    ),
    # Notifications: a notify_url only where the instance allows it, refused with the rule.
    Row(
        "create with a notify_url",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url=HOOK),
        Outcome("created"),
        NOTIFYING,
    ),
    Row(
        "create, notify_url while notifications are off",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url=HOOK),
        notify_refused("webhooks are not enabled"),
    ),
    Row(
        "create, notify_url to a host not allowed",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url="https://evil.example.net/"),
        notify_refused("host is not on the allow list"),
        NOTIFYING,
    ),
    Row(
        "create, notify_url over plain http",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url="http://hooks.example.com/"),
        notify_refused("URL must use https"),
        NOTIFYING,
    ),
    Row(
        "create, notify_url with a password",
        create_with(
            secret=SECRET, passphrase=PASSPHRASE, notify_url="https://u:pw@hooks.example.com/"
        ),
        notify_refused("URL must not carry a user name or password"),
        NOTIFYING,
    ),
    Row(
        "create, notify_url at a loopback address",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url="https://127.0.0.1/"),
        notify_refused("host is a loopback address"),
        {**NOTIFYING, "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"},
    ),
    Row(
        "create, notify_url at the cloud metadata address, private allowed",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url="https://169.254.169.254/"),
        notify_refused(None),
        {**NOTIFYING, "WEBHOOK_ALLOWED_HOSTS": "169.254.169.254", "WEBHOOK_ALLOW_PRIVATE": "true"},
    ),
    Row(
        "create, notify_url over the length limit",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url=HOOK + "&pad=" + "x" * 2048),
        notify_refused("URL is too long"),
        NOTIFYING,
    ),
    Row(
        "create, lone surrogate in the notify_url",
        create_with(secret=SECRET, passphrase=PASSPHRASE, notify_url=HOOK + LONE_SURROGATE),
        invalid("notify_url", f"notify_url {NOT_TEXT}"),
        NOTIFYING,
    ),
    Row(
        "receipt of a secret that asked to be notified",
        receipt_notifying(),
        Outcome("receipt", value="pending", notification=(HOOK, "pending")),
        NOTIFYING,
    ),
    Row(
        "receipt of a revealed secret, notification queued",
        receipt_notifying("revealed"),
        Outcome("receipt", value="revealed", notification=(HOOK, "pending")),
        NOTIFYING,
    ),
    Row(
        "receipt of a secret that asked for nothing",
        receipt_after(),
        Outcome("receipt", value="pending", notification=(None, None)),
    ),
    # The storage quota: a full store refuses creates and stores nothing, yet reveals.
    Row("create, store full", create_at_full_store(), STORAGE_FULL, {"MAX_STORED_BYTES": "1"}),
    Row(
        "reveal, store full",
        reveal_at_full_store(),
        Outcome("revealed", value=SECRET),
        {"MAX_LIVE_SECRETS": "1000000"},
    ),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
@pytest.mark.usefixtures("clock")  # a window of the limits never ends during a row
async def test_both_doors_give_the_same_outcome(
    row: Row, door: Door, db: Database, configure: Any
) -> None:
    # A key prefix of this test alone, so rate-limit counts start at zero for each door.
    configure(RATE_LIMIT_KEY_PREFIX=f"doors-{uuid.uuid4().hex[:8]}", **row.settings)
    CONFIGURE.set(configure)
    outcome = await row.run(door, db)
    assert row.expected.matches(outcome), f"{door.name}: {outcome}"
    for text in (outcome.field, outcome.message):
        assert PASSPHRASE not in str(text)
        assert LONE_SURROGATE not in str(text)
    if outcome.kind == "rate_limited":
        assert outcome.retry_after is not None
        assert 1 <= outcome.retry_after <= 3600


# -- The query-string forms beside both doors ----------------------------------------------------

# Bytes that are not UTF-8 (%FF%FE in a URL; lone surrogates in JSON, see `query_bytes`).
NOT_UTF8 = "\udcff\udcfe"
QUERY_DOORS: dict[str, Callable[[httpx.AsyncClient], Door]] = {
    "rest": Rest,
    "rest-query": RestQuery,
    "graphql": GraphQL,
}
QUERY_FORM_ROWS = [
    Row("reveal", reveal_stored(PASSPHRASE), Outcome("revealed", value=SECRET)),
    Row("reveal, wrong passphrase", reveal_stored("wrong"), NOT_FOUND),
    Row("burn", burn_stored(PASSPHRASE), Outcome("burned")),
    # Starlette would read these as U+FFFD, a wrong passphrase, and claim an attempt.
    Row(
        "reveal, passphrase not UTF-8 (%FF%FE)",
        reveal_stored(NOT_UTF8, check_untouched=True),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
    Row(
        "reveal, encoded lone surrogate (%ED%A0%80)",
        reveal_stored(LONE_SURROGATE, check_untouched=True),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
    Row(
        "burn, passphrase not UTF-8 (%FF%FE)",
        burn_stored(NOT_UTF8, check_untouched=True),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
    Row(
        "burn, encoded lone surrogate (%ED%A0%80)",
        burn_stored(LONE_SURROGATE, check_untouched=True),
        invalid("passphrase", f"passphrase {NOT_TEXT}"),
    ),
]


@pytest.mark.parametrize("door_name", QUERY_DOORS)
@pytest.mark.parametrize("row", QUERY_FORM_ROWS, ids=[row.name for row in QUERY_FORM_ROWS])
async def test_the_query_forms_mean_what_both_doors_mean(
    row: Row, door_name: str, client: httpx.AsyncClient, db: Database, configure: Any
) -> None:
    configure(RATE_LIMIT_KEY_PREFIX=f"doors-{uuid.uuid4().hex[:8]}", **row.settings)
    outcome = await row.run(QUERY_DOORS[door_name](client), db)
    assert row.expected.matches(outcome), f"{door_name}: {outcome}"
    assert PASSPHRASE not in str(outcome.message)


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
    "receipt": lambda door, db: door.receipt(uuid.uuid4().hex),
    "revoke": lambda door, db: door.revoke(uuid.uuid4().hex),
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
    """A malformed request, sent to each door's endpoint; both answer `status` and `message`."""

    name: str
    status: int
    message: str
    method: str = "POST"
    content: bytes = b"{}"
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)


MANY_HEADERS = {f"x-filler-{number}": "x" for number in range(120)}
REFUSALS = [
    Refusal(
        "body too large",
        413,
        "Request body too large: at most 2048 bytes",
        content=b" " * 2049,
        settings={"MAX_REQUEST_BYTES": "2048"},
    ),
    Refusal("wrong method", 405, "Method Not Allowed", method="PUT"),
    Refusal("not JSON", 415, NOT_JSON_MEDIA_TYPE, content_type="text/plain"),
    Refusal("no content type", 415, NOT_JSON_MEDIA_TYPE, content_type=None),
    Refusal(
        "JSON only named in a parameter",
        415,
        NOT_JSON_MEDIA_TYPE,
        content_type="text/plain; x=application/json",
    ),
    Refusal("empty body", 400, NOT_JSON, content=b""),
    Refusal(
        "empty body, no content type", 415, NOT_JSON_MEDIA_TYPE, content=b"", content_type=None
    ),
    Refusal("malformed JSON", 400, NOT_JSON, content=b'{"a": '),
    Refusal("not UTF-8", 400, NOT_JSON, content=b'{"a": "\xff"}'),
    Refusal("nested 100,000 deep", 400, NOT_JSON, content=b"[" * 100_000),
    Refusal("not an object", 400, NOT_AN_OBJECT, content=b"[1]"),
    Refusal("JSON null", 400, NOT_AN_OBJECT, content=b"null"),
    Refusal("an integer too long to parse", 400, NOT_JSON, content=b'{"a": ' + b"1" * 5000 + b"}"),
    # An intermediary may read the first of two equal keys, the service the last: refused.
    Refusal("a repeated key", 422, REPEATED_KEY, content=b'{"passphrase": "a", "passphrase": "b"}'),
    Refusal(
        "a repeated key in a nested object",
        422,
        REPEATED_KEY,
        content=b'{"query": "{ __typename }", "variables": {"p": "a", "p": "b"}}',
    ),
    Refusal(
        "header fields too large",
        431,
        "Request header fields too large: at most 100 fields and 16384 bytes",
        headers=MANY_HEADERS,
    ),
]
ENDPOINTS = {"rest": f"/secrets/{'0' * 32}", "graphql": "/graphql"}


def refusal_message(response: httpx.Response, door_name: str) -> str:
    """The words of a refusal, from either door's shape (a REST 422 is a list of one)."""
    body = response.json()
    if door_name == "graphql":
        (error,) = body["errors"]
        assert error["extensions"]["code"]
        return str(error["message"])
    detail = body["detail"]
    if isinstance(detail, list):
        (error,) = detail
        return str(error["msg"])
    assert isinstance(detail, str)
    return detail


@pytest.mark.parametrize("refusal", REFUSALS, ids=[refusal.name for refusal in REFUSALS])
@pytest.mark.parametrize("door_name", ENDPOINTS)
async def test_both_doors_refuse_malformed_requests_alike(
    refusal: Refusal, door_name: str, client: httpx.AsyncClient, configure: Any
) -> None:
    configure(**refusal.settings)
    headers = {"content-type": refusal.content_type} if refusal.content_type else {}
    response = await client.request(
        refusal.method,
        ENDPOINTS[door_name],
        content=refusal.content,
        headers={**headers, **refusal.headers},
    )
    assert response.status_code == refusal.status, response.text
    assert refusal_message(response, door_name) == refusal.message


@pytest.mark.parametrize("content_type", ["APPLICATION/JSON", "application/json; charset=UTF-8"])
@pytest.mark.parametrize("door_name", ENDPOINTS)
async def test_media_types_are_parsed_not_matched(
    content_type: str, door_name: str, client: httpx.AsyncClient
) -> None:
    payload = {"passphrase": PASSPHRASE} if door_name == "rest" else {"query": "{ __typename }"}
    response = await client.post(
        ENDPOINTS[door_name], content=json_body(payload), headers={"content-type": content_type}
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


@pytest.mark.parametrize(("path", "graphql"), [("/graphql/boom", True), ("/boom", False)])
async def test_a_crash_answers_in_the_shape_of_its_door(path: str, graphql: bool) -> None:
    from api.gql.error_responses import error_response as graphql_error
    from api.http.refusals import ErrorShapes, install_error_handlers
    from api.rest.error_responses import error_response as rest_error

    crashing = FastAPI()

    @crashing.get(path)
    async def boom() -> None:
        raise RuntimeError(PASSPHRASE)

    install_error_handlers(
        crashing, ErrorShapes(default=rest_error, by_prefix={"/graphql": graphql_error})
    )
    transport = httpx.ASGITransport(app=crashing, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(path)
    assert response.status_code == 500
    assert PASSPHRASE not in response.text
    if graphql:
        assert response.json() == {
            "errors": [
                {
                    "message": "Internal Server Error",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                }
            ]
        }
    else:
        assert response.json() == {"detail": "Internal Server Error"}


AT_CAPACITY = Outcome(
    "unavailable",
    message="Service temporarily unavailable: at capacity, retry after Retry-After seconds",
    retry_after=1,
)


@pytest.mark.parametrize("operation", ["create", "reveal", "burn"])
@pytest.mark.usefixtures("frozen_now")  # counts live secrets: none may expire meanwhile
async def test_both_doors_say_at_capacity_alike_and_change_nothing(
    operation: str, door: Door, app: FastAPI, db: Database, configure: Any
) -> None:
    """With every hashing slot taken, a request is refused before it changes any state."""
    from api.domain import service

    settings = configure(HASH_QUEUE_TIMEOUT_SECONDS="0.05", HASH_WORKERS="1")
    hasher = app.state.hasher  # the one these settings built
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=SECRET, passphrase=PASSPHRASE
    )
    live_before = await service.count_live(db=db)
    async with hasher.gate.admitted():  # the one slot, held by someone else
        if operation == "create":
            outcome = await door.create(secret=SECRET, passphrase=PASSPHRASE)
        elif operation == "reveal":
            outcome = await door.reveal(created.secret_key, PASSPHRASE)
        else:
            outcome = await door.burn(created.secret_key, PASSPHRASE)
    assert AT_CAPACITY.matches(outcome), f"{door.name}: {outcome}"
    assert await service.count_live(db=db) == live_before
    assert await _attempts(db, created.secret_key) == 0  # no attempt claimed
    revealed = await service.reveal_secret(
        db=db,
        settings=settings,
        hasher=hasher,
        secret_key=created.secret_key,
        passphrase=PASSPHRASE,
    )
    assert revealed == SECRET


async def _set_attempts(db: Database, key: str, attempts: int) -> None:
    await db.execute(
        update(secrets_table)
        .where(secret_columns.lookup_hash == crypto.lookup_hash(key))
        .values(failed_attempts=attempts)
    )


@pytest.mark.parametrize("operation", ["reveal", "burn"])
async def test_both_doors_say_retry_while_every_attempt_left_is_in_flight(
    operation: str, door: Door, db: Database
) -> None:
    """Every attempt claimed by checks still running: "retry", never "not found" (503)."""
    key = await _stored_key(db, door)
    await _set_attempts(db, key, 5)  # as five checks in flight leave it
    if operation == "reveal":
        outcome = await door.reveal(key, PASSPHRASE)
    else:
        outcome = await door.burn(key, PASSPHRASE)
    assert AT_CAPACITY.matches(outcome), f"{door.name}: {outcome}"
    assert await _attempts(db, key) == 5  # nothing claimed, nothing destroyed
    await _set_attempts(db, key, 4)  # one check gave its attempt back
    assert (await door.reveal(key, PASSPHRASE)).kind == "revealed"


@pytest.mark.parametrize("operation", ["create", "reveal"])
async def test_known_overload_is_refused_before_any_work(
    operation: str,
    door: Door,
    app: FastAPI,
    db: Database,
    configure: Any,
    client: httpx.AsyncClient,
) -> None:
    """When the gate already knows it would refuse, the refusal is immediate on both doors.

    REST answers it before routing (`api.http.shedding`), GraphQL in the service; the
    outcome is the same, with the protective headers.
    """
    from api.domain import service

    settings = configure(HASH_QUEUE_TIMEOUT_SECONDS="1", HASH_WORKERS="1")
    hasher = app.state.hasher  # the one these settings built
    created = await service.create_secret(
        db=db, settings=settings, hasher=hasher, secret=SECRET, passphrase=PASSPHRASE
    )
    gate = hasher.gate
    async with gate.admitted():
        gate.held_seconds = 10.0  # measured: a slot is held far longer than the bound
        if operation == "create":
            outcome = await door.create(secret=SECRET, passphrase=PASSPHRASE)
        else:
            outcome = await door.reveal(created.secret_key, PASSPHRASE)
        raw = await client.post("/generate", json={"secret": SECRET, "passphrase": PASSPHRASE})
    assert AT_CAPACITY.matches(outcome), f"{door.name}: {outcome}"
    assert raw.status_code == 503
    assert raw.headers["cache-control"] == "no-store"
    assert raw.headers["retry-after"] == "1"
    assert await _attempts(db, created.secret_key) == 0
