"""GraphQL object types, result unions and the `DateTime` scalar."""

from datetime import datetime
from typing import Annotated

import strawberry

from api.domain import clock
from api.domain.errors import ReceiptNotFound as ReceiptNotFoundError
from api.domain.errors import SecretNotFound as SecretNotFoundError
from api.domain.receipts import NotificationStatus, ReceiptStatus

# Replaces Strawberry's ISO `DateTime` (which writes `+00:00`) through the schema's
# `scalar_map`, so GraphQL writes timestamps exactly as REST does. Output only: no argument
# takes a DateTime, so it has no parser.
DATETIME = strawberry.scalar(
    name="DateTime",
    description="An RFC 3339 timestamp in UTC, to the second: `2026-12-08T13:00:51Z`.",
    serialize=clock.format_timestamp,
)


@strawberry.type(description="A stored secret: share the key, send the passphrase separately.")
class CreatedSecret:
    """The key that reveals a new secret once, the receipt key to follow it, and its expiry."""

    secret_key: str
    receipt_key: str = strawberry.field(
        description="Keep it: `receipt` and `revokeSecret` take it. It reveals nothing."
    )
    expires_at: datetime
    public_id: str = strawberry.field(
        description="Names the receipt in notifications; neither key, and it reveals nothing."
    )


@strawberry.type(description="The secret, returned once; it is deleted now.")
class RevealedSecret:
    """The revealed content."""

    secret: str


@strawberry.type(description="The secret was destroyed unread.")
class BurnedSecret:
    """The key of the destroyed secret."""

    secret_key: str


@strawberry.type(
    description="Unknown key, wrong passphrase, already revealed or expired: one answer for all."
)
class SecretNotFound:
    """The secret cannot be revealed; the message is always `Secret not found`."""

    message: str = SecretNotFoundError.message


@strawberry.type(description="An argument breaks a documented limit; its value is never quoted.")
class InvalidInput:
    """Which argument was rejected and why."""

    field: str
    message: str


# The domain's statuses, as GraphQL enums of their upper-case names.
strawberry.enum(ReceiptStatus, name="ReceiptStatus", description="What became of a secret.")
strawberry.enum(
    NotificationStatus,
    name="NotificationStatus",
    description="How the notification asked for with `notifyUrl` is going.",
)


@strawberry.type(description="What became of a secret, for its sender.")
class Receipt:
    """A secret's status, its times, and how many wrong passphrases were tried."""

    status: ReceiptStatus
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None = strawberry.field(
        description="When it left PENDING (for EXPIRED, its expiry); null while pending."
    )
    failed_attempts: int
    public_id: str | None = strawberry.field(
        description="What notifications name this receipt by; null on receipts made before "
        "notifications existed."
    )
    notify_url: str | None = strawberry.field(
        description="Where the notification goes; null if none was asked for."
    )
    notification: NotificationStatus | None = strawberry.field(
        description="PENDING until delivered, DELIVERED, or FAILED (refused, or not delivered "
        "within WEBHOOK_RETRY_HOURS); null without a notifyUrl."
    )


@strawberry.type(description="Unknown, malformed or purged receipt key: one answer for all.")
class ReceiptNotFound:
    """No receipt for this key; the message is always `Receipt not found`."""

    message: str = ReceiptNotFoundError.message


@strawberry.type(description="The service's limits, so clients can validate before sending.")
class Limits:
    """The configured limits of this service."""

    max_secret_bytes: int
    max_passphrase_length: int
    min_ttl_seconds: int
    max_ttl_seconds: int
    default_ttl_seconds: int
    max_failed_attempts: int
    receipt_retention_seconds: int


CreateSecretResult = Annotated[CreatedSecret | InvalidInput, strawberry.union("CreateSecretResult")]
RevealSecretResult = Annotated[
    RevealedSecret | SecretNotFound | InvalidInput, strawberry.union("RevealSecretResult")
]
BurnSecretResult = Annotated[
    BurnedSecret | SecretNotFound | InvalidInput, strawberry.union("BurnSecretResult")
]
ReceiptResult = Annotated[Receipt | ReceiptNotFound, strawberry.union("ReceiptResult")]
