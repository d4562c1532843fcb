"""Request and response bodies of the REST API."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, StrictInt
from pydantic.config import JsonDict

from api.domain import clock
from api.domain.receipts import NotificationStatus, ReceiptStatus
from api.settings import Settings

# The limits are documented in the schema at their defaults (no environment read), but
# enforced by the service with the application's settings, which it names in its messages
# (the same on both doors).
_defaults = Settings.model_construct()
PASSPHRASE_BOUND: JsonDict = {"minLength": 1, "maxLength": _defaults.max_passphrase_length}
_TTL_BOUNDS: JsonDict = {"minimum": _defaults.min_ttl_seconds, "maximum": _defaults.max_ttl_seconds}


def _integral_float_to_int(value: object) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON Schema's `integer` (and GraphQL's `Int`) admit 60.0 but not "60", " 60 ", "6_0" or
# true, which pydantic's lax mode would turn into integers.
JsonInteger = Annotated[StrictInt, BeforeValidator(_integral_float_to_int)]

Rfc3339Utc = Annotated[
    datetime,
    PlainSerializer(clock.format_timestamp, return_type=str),
]


class CreateSecretRequest(BaseModel):
    """A secret to store and the passphrase that will unlock it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"secret": "my_secret", "passphrase": "my_passphrase", "ttl_seconds": 3600}
            ]
        },
    )

    secret: str = Field(
        json_schema_extra={"minLength": 1},
        description=f"The text to share, at most MAX_SECRET_BYTES ({_defaults.max_secret_bytes} "
        "by default) bytes of UTF-8.",
    )
    passphrase: str = Field(
        description=f"Needed to reveal the secret, at most MAX_PASSPHRASE_LENGTH "
        f"({_defaults.max_passphrase_length} by default) characters.",
        json_schema_extra=PASSPHRASE_BOUND,
    )
    ttl_seconds: JsonInteger | None = Field(
        default=None,
        description=f"Lifetime in seconds, between MIN_TTL_SECONDS ({_defaults.min_ttl_seconds}) "
        f"and MAX_TTL_SECONDS ({_defaults.max_ttl_seconds}); "
        f"default DEFAULT_TTL_SECONDS ({_defaults.default_ttl_seconds}).",
        json_schema_extra=_TTL_BOUNDS,
    )
    notify_url: str | None = Field(
        default=None,
        description="Told once, by a signed POST, when the secret is revealed, burned, "
        "revoked, destroyed or expired. Only `https://` to a host the instance allows "
        "(WEBHOOK_ALLOWED_HOSTS; none by default, which refuses any notify_url).",
        json_schema_extra={"maxLength": 2048, "format": "uri"},
    )


class CreatedSecretResponse(BaseModel):
    """The key to share and the moment the secret expires."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret_key": "7c20a8cbe33d78142d4e670665165b19",
                    "receipt_key": "0b9e5a3c6d2f41e8a7c3b5d9e1f20a4c",
                    "expires_at": "2026-12-05T10:00:00Z",
                    "public_id": "rcpt_Yq3b9Kx2LmP0sT4v",
                }
            ]
        }
    )

    secret_key: str = Field(description="32 lowercase hex characters; share it with the reader.")
    receipt_key: str = Field(
        description="32 lowercase hex characters; keep it to follow or revoke the secret "
        "(`/receipts/{receipt_key}`). It reveals nothing."
    )
    expires_at: Rfc3339Utc = Field(description="RFC 3339 UTC time after which it is gone.")
    public_id: str = Field(
        description="Names the receipt in notifications; it is neither key and reveals nothing."
    )


class ReceiptResponse(BaseModel):
    """What became of a secret, for its sender."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "revealed",
                    "created_at": "2026-12-01T10:00:00Z",
                    "expires_at": "2026-12-08T10:00:00Z",
                    "closed_at": "2026-12-01T10:05:00Z",
                    "failed_attempts": 1,
                    "public_id": "rcpt_Yq3b9Kx2LmP0sT4v",
                    "notify_url": "https://hooks.example.com/ots",
                    "notification": "delivered",
                }
            ]
        }
    )

    status: ReceiptStatus = Field(
        description="pending, revealed, burned (by the recipient), revoked (by the sender), "
        "destroyed (too many wrong passphrases) or expired."
    )
    created_at: Rfc3339Utc
    expires_at: Rfc3339Utc
    closed_at: Rfc3339Utc | None = Field(
        description="When it left `pending` (for `expired`, its expiry); null while pending."
    )
    failed_attempts: int = Field(description="Wrong passphrases tried so far.")
    public_id: str | None = Field(
        description="What notifications name this receipt by; null on receipts made before "
        "notifications existed."
    )
    notify_url: str | None = Field(description="Where the notification goes; null if none.")
    notification: NotificationStatus | None = Field(
        description="pending (until delivered), delivered, or failed (refused, or not "
        "delivered within WEBHOOK_RETRY_HOURS); null without a notify_url."
    )


class RevealRequest(BaseModel):
    """The passphrase, sent in the body so it stays out of URLs and access logs."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"passphrase": "my_passphrase"}]}
    )

    passphrase: str = Field(json_schema_extra=PASSPHRASE_BOUND)


class RevealedSecretResponse(BaseModel):
    """The secret, returned exactly once."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"secret": "my_secret"}]})

    secret: str


class StatusResponse(BaseModel):
    """The answer of a health or readiness probe."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: str
