"""Creator tokens: who may create secrets when CREATE_AUTH=token.

A token is `ots_` and 256 random bits (43 base64url characters). It is shown once, when
issued, and stored only as its SHA-256: 256 random bits need no slow hash, and a stolen
table holds nothing that creates. Each token has a name, chosen by the operator, which is
all the admin command and the metrics ever show of it. Revoking takes effect on the next
request (no cache). Only creating needs a token: reveals, burns and receipts stay anonymous.
A request's token is read, and refused with 401, in `api.access.authentication`.
"""

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from limits import parse_many

from api.domain import clock, events
from api.domain.errors import InvalidInput, Unauthenticated
from api.domain.unavailability import unavailable_when_the_database_fails
from api.storage import statements
from api.storage.database import Database, Rows

TOKEN_PREFIX = "ots_"  # noqa: S105  (a prefix, so scanners can spot leaked tokens)
TOKEN_BYTES = 32
_TOKEN_PATTERN = re.compile(r"ots_[A-Za-z0-9_-]{43}")
# Names become a metric label and a column of `tokens list`: short, plain and bounded.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# `last_used_at` is written at most this often per token: not one write per create.
LAST_USED_RESOLUTION = timedelta(minutes=1)
RATE_LIMIT_LENGTH = 64  # models.CreatorToken.rate_limit


@dataclass(frozen=True, slots=True)
class Creator:
    """Who a valid token says is creating: its id (for rate limits), name and own limit."""

    id: uuid.UUID
    name: str
    rate_limit: str | None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """What the admin command shows of a token; never the token itself."""

    name: str
    rate_limit: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenNameTaken(Exception):
    """A token of this name exists already (revoked ones included: names are not reused)."""


class TokenNotFound(Exception):
    """No token has this name."""


def token_digest(token: str) -> bytes:
    """Return the SHA-256 a token is stored and found by."""
    return hashlib.sha256(token.encode("ascii")).digest()


def is_well_formed_token(token: str) -> bool:
    """Whether `token` has the shape of a token this service issues."""
    return _TOKEN_PATTERN.fullmatch(token) is not None


def check_rate_limit(rate_limit: str) -> None:
    """Raise `InvalidInput` unless `rate_limit` parses, like `600/minute`."""
    try:
        parse_many(rate_limit)
    except ValueError:
        raise InvalidInput("rate", "rate must be a limit like 600/minute") from None
    if len(rate_limit) > RATE_LIMIT_LENGTH:
        raise InvalidInput("rate", f"rate must be at most {RATE_LIMIT_LENGTH} characters")


def _record(row: Sequence[Any]) -> TokenRecord:
    name, rate_limit, created_at, last_used_at, revoked_at = row
    return TokenRecord(
        name=name,
        rate_limit=rate_limit,
        created_at=clock.as_utc(created_at),
        last_used_at=clock.as_utc(last_used_at) if last_used_at else None,
        revoked_at=clock.as_utc(revoked_at) if revoked_at else None,
    )


@unavailable_when_the_database_fails
async def issue_token(*, db: Database, name: str, rate_limit: str | None = None) -> str:
    """Store a new token named `name`; return it. This is the only time it is seen."""
    if _NAME_PATTERN.fullmatch(name) is None:
        raise InvalidInput(
            "name", "name must be 1 to 64 letters, digits, '.', '_' or '-', not starting with one"
        )
    if rate_limit is not None:
        check_rate_limit(rate_limit)
    if await db.execute(statements.FIND_TOKEN_BY_NAME, token_name=name):
        raise TokenNameTaken(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    await db.execute(
        statements.INSERT_TOKEN,
        id=uuid.uuid4(),
        name=name,
        token_hash=token_digest(token),
        rate_limit=rate_limit,
        created_at=clock.now(),
        last_used_at=None,
        revoked_at=None,
        signing_generation=0,
    )
    return token


@unavailable_when_the_database_fails
async def list_tokens(*, db: Database) -> list[TokenRecord]:
    """Return every token, revoked ones included, oldest first."""
    return [_record(row) for row in await db.execute(statements.LIST_TOKENS)]


@unavailable_when_the_database_fails
async def revoke_token(*, db: Database, name: str) -> TokenRecord:
    """Revoke the token named `name` (idempotent); return it as it is now."""
    await db.execute(statements.REVOKE_TOKEN, token_name=name, now=clock.now())
    rows = await db.execute(statements.FIND_TOKEN_BY_NAME, token_name=name)
    if not rows:
        raise TokenNotFound(name)
    return _record(rows[0])


@unavailable_when_the_database_fails
async def signing_identity(
    *, db: Database, name: str, rotate: bool = False
) -> tuple[uuid.UUID, int]:
    """Return the id and signing generation of the token named `name`.

    With `rotate`, the generation counts up first, so its notifications get a new signing
    secret (`api.domain.notifications.token_signing_secret`) from the next one on.
    """
    statement = statements.ROTATE_TOKEN_SIGNING if rotate else statements.TOKEN_SIGNING
    rows = await db.execute(statement, token_name=name)
    if not rows:
        raise TokenNotFound(name)
    token_id, generation = rows[0]
    return token_id, int(generation)


@unavailable_when_the_database_fails
async def authenticate(*, db: Database, token: str | None) -> Creator:
    """Return the creator a live token names, or raise `Unauthenticated`."""
    rows: Rows = ()
    if token is not None and is_well_formed_token(token):
        rows = await db.execute(statements.FIND_LIVE_TOKEN, digest=token_digest(token))
    if not rows:
        events.emit(events.REFUSED_UNAUTHENTICATED)
        raise Unauthenticated(presented=token is not None)
    token_id, name, rate_limit, last_used_at = rows[0]
    now = clock.now()
    if last_used_at is None or now - clock.as_utc(last_used_at) >= LAST_USED_RESOLUTION:
        await db.execute(statements.TOUCH_TOKEN, token_id=token_id, now=now)
    return Creator(id=token_id, name=name, rate_limit=rate_limit)
