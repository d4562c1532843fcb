"""GraphQL defences: document limits, the introspection switch and safe errors, per request."""

from collections.abc import Callable

from strawberry.extensions import (
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from api.gql.errors import SafeErrors
from api.settings import get_settings


def _introspection_switch() -> SchemaExtension:
    if get_settings().graphql_introspection:
        return SchemaExtension()
    return DisableIntrospection()


def _safe_errors() -> SchemaExtension:
    # Without introspection, "Did you mean 'revealSecret'?" would describe the schema anyway.
    return SafeErrors(hide_suggestions=not get_settings().graphql_introspection)


def extensions() -> list[Callable[[], SchemaExtension]]:
    """Return the schema extensions as factories, so no instance is shared between requests.

    Each factory reads the settings when a request starts, so limits follow the configuration.
    """
    return [
        lambda: QueryDepthLimiter(max_depth=get_settings().graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=get_settings().graphql_max_aliases),
        lambda: MaxTokensLimiter(max_token_count=get_settings().graphql_max_tokens),
        _introspection_switch,
        _safe_errors,
    ]
