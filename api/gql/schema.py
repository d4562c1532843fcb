"""The Strawberry schema: resolvers call the service layer and map its errors to unions.

`ServiceUnavailable` is not caught here: it is an error, not a result, and `api.gql.error_responses`
turns it into `SERVICE_UNAVAILABLE` once for every field.
"""

from collections.abc import Awaitable
from datetime import datetime

import strawberry
from strawberry import UNSET
from strawberry.extensions import AddValidationRules
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from api.access.rate_limits import Bucket
from api.domain import receipts, service
from api.domain.errors import InvalidInput as InvalidInputError
from api.domain.errors import ReceiptNotFound as ReceiptNotFoundError
from api.domain.errors import SecretNotFound as SecretNotFoundError
from api.gql.context import Context
from api.gql.error_responses import QuietSchema
from api.gql.hardening import extensions
from api.gql.one_reveal import OneRevealPerOperation
from api.gql.rate_limits import GraphQLRateLimit, operation_buckets, rate_limited
from api.gql.types import (
    DATETIME,
    BurnedSecret,
    BurnSecretResult,
    CreatedSecret,
    CreateSecretResult,
    InvalidInput,
    Limits,
    Receipt,
    ReceiptNotFound,
    ReceiptResult,
    RevealedSecret,
    RevealSecretResult,
    SecretNotFound,
)
from api.settings import Settings


@strawberry.type
class Query:
    """Read-only fields."""

    @strawberry.field(description="The limits this service enforces.")
    def limits(self, info: Info[Context, None]) -> Limits:
        """Return the configured limits."""
        settings = info.context.settings
        return Limits(
            max_secret_bytes=settings.max_secret_bytes,
            max_passphrase_length=settings.max_passphrase_length,
            min_ttl_seconds=settings.min_ttl_seconds,
            max_ttl_seconds=settings.max_ttl_seconds,
            default_ttl_seconds=settings.default_ttl_seconds,
            max_failed_attempts=settings.max_failed_attempts,
            receipt_retention_seconds=settings.receipt_retention_seconds,
        )

    @strawberry.field(
        description="What became of a secret, by the receipt key its creator got.",
        metadata=rate_limited(Bucket.RECEIPT),
    )
    async def receipt(self, info: Info[Context, None], receipt_key: str) -> ReceiptResult:
        """Return the receipt, or `ReceiptNotFound`."""
        return await _receipt(receipts.get_receipt(db=info.context.db, receipt_key=receipt_key))


async def _receipt(view: Awaitable[receipts.ReceiptView]) -> ReceiptResult:
    try:
        found = await view
    except ReceiptNotFoundError:
        return ReceiptNotFound()
    return Receipt(
        status=found.status,
        created_at=found.created_at,
        expires_at=found.expires_at,
        closed_at=found.closed_at,
        failed_attempts=found.failed_attempts,
        public_id=found.public_id,
        notify_url=found.notify_url,
        notification=found.notification,
    )


def _invalid(error: InvalidInputError) -> InvalidInput:
    head, *rest = error.field.split("_")
    return InvalidInput(field=head + "".join(part.title() for part in rest), message=error.message)


@strawberry.type
class Mutation:
    """Every operation that changes state; each names the rate-limit bucket it spends."""

    @strawberry.mutation(
        description="Store a secret behind a passphrase; returns its key. With CREATE_AUTH="
        "token it needs `Authorization: Bearer <token>` (UNAUTHENTICATED otherwise); a full "
        "store answers STORAGE_QUOTA_REACHED.",
        metadata=rate_limited(Bucket.CREATE),
    )
    async def create_secret(
        self,
        info: Info[Context, None],
        secret: str,
        passphrase: str,
        ttl_seconds: int | None = UNSET,
        notify_url: str | None = UNSET,
    ) -> CreateSecretResult:
        """Store a secret and return its key and expiry, or say which argument is invalid."""
        try:
            created = await service.create_secret(
                db=info.context.db,
                settings=info.context.settings,
                hasher=info.context.hasher,
                secret=secret,
                passphrase=passphrase,
                ttl_seconds=None if ttl_seconds is UNSET else ttl_seconds,
                creator=info.context.creator,
                notify_url=None if notify_url is UNSET else notify_url,
            )
        except InvalidInputError as error:
            return _invalid(error)
        return CreatedSecret(
            secret_key=created.secret_key,
            receipt_key=created.receipt_key,
            expires_at=created.expires_at,
            public_id=created.public_id,
        )

    @strawberry.mutation(
        description="Reveal a secret once; it is deleted as it is returned. It must be the "
        "only field of its operation.",
        metadata=rate_limited(Bucket.REVEAL),
    )
    async def reveal_secret(
        self, info: Info[Context, None], secret_key: str, passphrase: str
    ) -> RevealSecretResult:
        """Return the secret and delete it, or `SecretNotFound`, or which argument is invalid."""
        try:
            secret = await service.reveal_secret(
                db=info.context.db,
                settings=info.context.settings,
                hasher=info.context.hasher,
                secret_key=secret_key,
                passphrase=passphrase,
            )
        except SecretNotFoundError:
            return SecretNotFound()
        except InvalidInputError as error:
            return _invalid(error)
        return RevealedSecret(secret=secret)

    @strawberry.mutation(
        description="Destroy a secret unread.", metadata=rate_limited(Bucket.REVEAL)
    )
    async def burn_secret(
        self, info: Info[Context, None], secret_key: str, passphrase: str
    ) -> BurnSecretResult:
        """Delete the secret without revealing it, or `SecretNotFound`, or `InvalidInput`."""
        try:
            await service.burn_secret(
                db=info.context.db,
                settings=info.context.settings,
                hasher=info.context.hasher,
                secret_key=secret_key,
                passphrase=passphrase,
            )
        except SecretNotFoundError:
            return SecretNotFound()
        except InvalidInputError as error:
            return _invalid(error)
        return BurnedSecret(secret_key=secret_key)

    @strawberry.mutation(
        description="Destroy a pending secret through its receipt; changes nothing otherwise.",
        metadata=rate_limited(Bucket.RECEIPT),
    )
    async def revoke_secret(self, info: Info[Context, None], receipt_key: str) -> ReceiptResult:
        """Revoke the secret and return its receipt, or `ReceiptNotFound`."""
        return await _receipt(receipts.revoke_secret(db=info.context.db, receipt_key=receipt_key))


def build_schema(settings: Settings) -> QuietSchema:
    """Build the schema with the limits, error masking and introspection switch of `settings`.

    Fails if a mutation names no rate-limit bucket.
    """
    schema = QuietSchema(
        query=Query,
        mutation=Mutation,
        extensions=[
            *extensions(settings),
            lambda: AddValidationRules([OneRevealPerOperation]),
            GraphQLRateLimit,
        ],
        config=StrawberryConfig(scalar_map={datetime: DATETIME}),
    )
    operation_buckets(schema)
    return schema
