"""GraphQL defences: document limits, the introspection switch and safe errors, per request."""

from collections.abc import Callable

from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from api.gql.error_responses import SafeErrors
from api.settings import Settings


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """Return the schema extensions as factories, so no instance is shared between requests.

    Each factory reads `settings` when a request starts.
    """

    def introspection_switch() -> SchemaExtension:
        if settings.graphql_introspection:
            return SchemaExtension()
        return DisableIntrospection()

    def safe_errors() -> SchemaExtension:
        # Without introspection, "Did you mean 'revealSecret'?" would describe the schema anyway.
        return SafeErrors(hide_suggestions=not settings.graphql_introspection)

    return [
        lambda: QueryDepthLimiter(max_depth=settings.graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases),
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        introspection_switch,
        safe_errors,
    ]
