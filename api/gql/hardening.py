"""GraphQL defences: document limits, masked unexpected errors, values kept out of messages.

graphql-core quotes the offending value in coercion errors ("Variable '$passphrase' got
invalid value 123; …"). That value may be a secret, so those messages are rewritten
without it, while their meaning (which variable, which type) stays for the client.
"""

import logging
import re
from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.types.execution import ExecutionContext

from api.settings import get_settings

logger = logging.getLogger(__name__)

UNEXPECTED_ERROR_MESSAGE = "Unexpected error."

_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Variable '$x' got invalid value 123; Int cannot …" → "Variable '$x' got invalid value; …"
    (re.compile(r"got invalid value .*?(; |$)", re.DOTALL), r"got invalid value\1"),
    # "String cannot represent a non string value: 123" → "… value."
    (re.compile(r"(cannot represent [^:]*?value): .*?(; |$)", re.DOTALL), r"\1\2"),
    # "Expected value of type 'Int', found \"abc\"; …" → "Expected value of type 'Int'; …"
    (re.compile(r"(Expected value of type '[^']+'), found .*?(; |\.$|$)", re.DOTALL), r"\1\2"),
)


def redact_values(message: str) -> str:
    """Remove any quoted input value from a graphql-core error message."""
    for pattern, replacement in _VALUE_PATTERNS:
        message = pattern.sub(replacement, message)
    return message


def is_unexpected(error: GraphQLError) -> bool:
    """Whether `error` comes from a failure in our code rather than from the request."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class SafeErrors(MaskErrors):
    """Masks unexpected errors and strips input values from request errors."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=UNEXPECTED_ERROR_MESSAGE)

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [
            self.anonymise_error(error) if is_unexpected(error) else _without_values(error)
            for error in errors
        ]


def _without_values(error: GraphQLError) -> GraphQLError:
    return GraphQLError(
        message=redact_values(error.message),
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions=error.extensions,
    )


class QuietSchema(strawberry.Schema):
    """A schema that logs unexpected errors by type and path only, never by message."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Log failures of our own code; request errors are the client's business."""
        for error in errors:
            if is_unexpected(error):
                logger.error(
                    "GraphQL resolver failed: %s at %s",
                    type(error.original_error).__name__,
                    error.path,
                )


def _introspection_switch() -> SchemaExtension:
    if get_settings().graphql_introspection:
        return SchemaExtension()
    return DisableIntrospection()


def extensions() -> list[Callable[[], SchemaExtension]]:
    """Return the schema extensions as factories, so no instance is shared between requests.

    Each factory reads the settings when a request starts, so limits follow the configuration.
    """
    return [
        lambda: QueryDepthLimiter(max_depth=get_settings().graphql_max_depth),
        lambda: MaxAliasesLimiter(max_alias_count=get_settings().graphql_max_aliases),
        lambda: MaxTokensLimiter(max_token_count=get_settings().graphql_max_tokens),
        _introspection_switch,
        SafeErrors,
    ]
