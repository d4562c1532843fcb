"""The Strawberry schema: resolvers call the service layer and map its errors to unions."""

import strawberry
from strawberry import UNSET
from strawberry.types import Info

from api import service
from api.errors import InvalidInput as InvalidInputError
from api.errors import SecretNotFound as SecretNotFoundError
from api.gql.context import Context
from api.gql.hardening import QuietSchema, extensions
from api.gql.types import (
    BurnedSecret,
    BurnSecretResult,
    CreatedSecret,
    CreateSecretResult,
    InvalidInput,
    Limits,
    RevealedSecret,
    RevealSecretResult,
    SecretNotFound,
)
from api.ratelimit import GraphQLRateLimit
from api.settings import get_settings


@strawberry.type
class Query:
    """Read-only fields."""

    @strawberry.field(description="The limits this service enforces.")
    def limits(self) -> Limits:
        """Return the configured limits."""
        settings = get_settings()
        return Limits(
            max_secret_bytes=settings.max_secret_bytes,
            max_passphrase_length=settings.max_passphrase_length,
            min_ttl_seconds=settings.min_ttl_seconds,
            max_ttl_seconds=settings.max_ttl_seconds,
            default_ttl_seconds=settings.default_ttl_seconds,
            max_failed_attempts=settings.max_failed_attempts,
        )


@strawberry.type
class Mutation:
    """Every operation that changes state."""

    @strawberry.mutation(description="Store a secret behind a passphrase; returns its key.")
    async def create_secret(
        self,
        info: Info[Context, None],
        secret: str,
        passphrase: str,
        ttl_seconds: int | None = UNSET,
    ) -> CreateSecretResult:
        """Store a secret and return its key and expiry, or say which argument is invalid."""
        try:
            created = await service.create_secret(
                db=info.context.db,
                secret=secret,
                passphrase=passphrase,
                ttl_seconds=None if ttl_seconds is UNSET else ttl_seconds,
            )
        except InvalidInputError as error:
            return InvalidInput(field=_graphql_name(error.field), message=error.message)
        return CreatedSecret(secret_key=created.secret_key, expires_at=created.expires_at)

    @strawberry.mutation(description="Reveal a secret once; it is deleted as it is returned.")
    async def reveal_secret(
        self, info: Info[Context, None], secret_key: str, passphrase: str
    ) -> RevealSecretResult:
        """Return the secret and delete it, or `SecretNotFound`."""
        try:
            secret = await service.reveal_secret(
                db=info.context.db, secret_key=secret_key, passphrase=passphrase
            )
        except (SecretNotFoundError, InvalidInputError):
            return SecretNotFound()
        return RevealedSecret(secret=secret)

    @strawberry.mutation(description="Destroy a secret unread.")
    async def burn_secret(
        self, info: Info[Context, None], secret_key: str, passphrase: str
    ) -> BurnSecretResult:
        """Delete the secret without revealing it, or `SecretNotFound`."""
        try:
            await service.burn_secret(
                db=info.context.db, secret_key=secret_key, passphrase=passphrase
            )
        except (SecretNotFoundError, InvalidInputError):
            return SecretNotFound()
        return BurnedSecret(secret_key=secret_key)


def _graphql_name(field: str) -> str:
    head, *rest = field.split("_")
    return head + "".join(part.title() for part in rest)


def build_schema() -> QuietSchema:
    """Build the schema with its limits, error masking and introspection switch."""
    return QuietSchema(query=Query, mutation=Mutation, extensions=[*extensions(), GraphQLRateLimit])
