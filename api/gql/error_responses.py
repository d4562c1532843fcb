"""How the GraphQL door reports failures: every answer has the GraphQL response shape.

Each error carries `extensions.code`, whatever the HTTP status, so a client needs one parser:

- `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED` (document limits included) and
  `BAD_USER_INPUT` (a variable of the wrong type) come from graphql-core, whose messages
  would quote the rejected value (`found String 'hunter2'`): they are rewritten without it.
  With introspection off, its suggestions ("Did you mean 'revealSecret'?") are dropped
  too: they would tell the schema to whoever guesses near it.
- `RATE_LIMITED` (HTTP 429) and `SERVICE_UNAVAILABLE` (HTTP 503), both with
  `retryAfterSeconds` and a `Retry-After` header, as REST answers them.
- `UNAUTHENTICATED` (HTTP 401 with `WWW-Authenticate`): creating needs a creator token.
- `STORAGE_QUOTA_REACHED` (HTTP 507): the store is full; nothing was stored.
- `INTERNAL_SERVER_ERROR`: a failure of our own code, masked and logged by type only.
- HTTP-level refusals (400, 404, 405, 413, 415, 422 for a repeated JSON key, 431) get the
  code of their status.

Expected outcomes of a resolver (not found, invalid input) are union members, not errors.
"""

import logging
import re
from collections.abc import Mapping
from typing import Any

import strawberry
from graphql import GraphQLError, GraphQLSyntaxError
from starlette.responses import JSONResponse, Response
from strawberry.extensions import MaskErrors
from strawberry.types.execution import ExecutionContext

from api.access.authentication import www_authenticate
from api.domain.errors import ServiceUnavailable, StorageQuotaReached, Unauthenticated

logger = logging.getLogger(__name__)

UNEXPECTED_ERROR_MESSAGE = "Unexpected error."
SERVICE_UNAVAILABLE_CODE = "SERVICE_UNAVAILABLE"
UNAUTHENTICATED_CODE = "UNAUTHENTICATED"
STORAGE_QUOTA_REACHED_CODE = "STORAGE_QUOTA_REACHED"
_STATUS_CODES = {
    400: "BAD_REQUEST",
    401: UNAUTHENTICATED_CODE,
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_CONTENT",
    429: "RATE_LIMITED",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    500: "INTERNAL_SERVER_ERROR",
    503: SERVICE_UNAVAILABLE_CODE,
    507: STORAGE_QUOTA_REACHED_CODE,
}
# Domain errors that are answers, not failures: their HTTP status, as REST gives it.
_ANSWERED = (ServiceUnavailable, StorageQuotaReached, Unauthenticated)

_VALUE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # "Variable '$x' got invalid value 123; Int cannot …" → "Variable '$x' got invalid value; …"
    (re.compile(r"got invalid value .*?(; |$)", re.DOTALL), r"got invalid value\1"),
    # "String cannot represent a non string value: 123" → "… value."
    (re.compile(r"(cannot represent [^:]*?value): .*?(; |$)", re.DOTALL), r"\1\2"),
    # "Expected value of type 'Int', found \"abc\"; …" → "Expected value of type 'Int'; …"
    (re.compile(r"(Expected value of type '[^']+'), found .*?(; |\.$|$)", re.DOTALL), r"\1\2"),
)
# A syntax error quotes the token or the characters it stopped at, which may be part of a
# value: "Expected Name, found String 'hunter2'." → "Expected Name, found String."
_SYNTAX_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\b(Name|Int|Float|String|BlockString) '.*'(?=\.$| is reserved)", re.DOTALL),
        r"\1",
    ),
    # "Invalid character escape sequence: '\q'.", "Unexpected character: 'x'.", …
    (re.compile(r": '.*'\.$", re.DOTALL), "."),
    # "Invalid number, expected digit before '.', did you mean '0.5'?"
    (re.compile(r", did you mean '.*'\?$", re.DOTALL), "."),
)
# graphql-core appends its suggestions last: " Did you mean 'revealSecret' or 'revokeSecret'?"
_SUGGESTION = re.compile(r" Did you mean .*\?$", re.DOTALL)


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Return an HTTP-level refusal of a GraphQL request, in the GraphQL response shape."""
    code = _STATUS_CODES.get(status_code, "BAD_REQUEST" if status_code < 500 else "INTERNAL")
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return JSONResponse(body, status_code, headers=dict(headers or {}))


def redact_values(message: str) -> str:
    """Remove any quoted input value from a graphql-core error message."""
    for pattern, replacement in _VALUE_PATTERNS:
        message = pattern.sub(replacement, message)
    return message


def redact_syntax(message: str) -> str:
    """Remove the quoted token or characters from a graphql-core syntax error message."""
    for pattern, replacement in _SYNTAX_PATTERNS:
        message = pattern.sub(replacement, message)
    return message


def without_suggestions(message: str) -> str:
    """Remove graphql-core's "Did you mean …?" from a message."""
    return _SUGGESTION.sub("", message)


def is_unexpected(error: GraphQLError) -> bool:
    """Whether `error` comes from a failure in our code rather than from the request."""
    original = error.original_error
    return (
        original is not None
        and not isinstance(original, GraphQLError)
        and not isinstance(original, _ANSWERED)
    )


def _request_error_code(error: GraphQLError) -> str:
    if isinstance(error, GraphQLSyntaxError):
        return "GRAPHQL_PARSE_FAILED"
    if error.message.startswith("Variable '$"):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


class SafeErrors(MaskErrors):
    """Gives every error a code: masks our failures, strips values, maps unavailability.

    With `hide_suggestions` (introspection off), graphql-core's suggestions go too.
    """

    def __init__(self, *, hide_suggestions: bool = False) -> None:
        super().__init__(should_mask_error=is_unexpected, error_message=UNEXPECTED_ERROR_MESSAGE)
        self.hide_suggestions = hide_suggestions

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._process_error(error) for error in errors]

    def _process_error(self, error: GraphQLError) -> GraphQLError:
        if isinstance(error.original_error, ServiceUnavailable):
            return self._unavailable(error, error.original_error)
        if isinstance(error.original_error, StorageQuotaReached):
            self._set_status(507)
            return _with_code(error, STORAGE_QUOTA_REACHED_CODE, StorageQuotaReached.message)
        if is_unexpected(error):
            return _with_code(self.anonymise_error(error), "INTERNAL_SERVER_ERROR")
        if error.extensions and "code" in error.extensions:
            return error
        return _with_code(error, _request_error_code(error), self._request_message(error))

    def _request_message(self, error: GraphQLError) -> str:
        message = redact_values(error.message)
        if isinstance(error, GraphQLSyntaxError):
            message = redact_syntax(message)
        if self.hide_suggestions:
            message = without_suggestions(message)
        return message

    def _unavailable(self, error: GraphQLError, cause: ServiceUnavailable) -> GraphQLError:
        at_capacity = cause.message == ServiceUnavailable.AT_CAPACITY
        level = logging.DEBUG if at_capacity else logging.WARNING  # as REST logs it
        logger.log(level, "GraphQL %s: %s", SERVICE_UNAVAILABLE_CODE, cause.message)
        self._set_status(503, {"Retry-After": str(cause.retry_after_seconds)})
        return unavailable_error(cause, nodes=error.nodes, path=error.path)

    def _set_status(self, status_code: int, headers: Mapping[str, str] | None = None) -> None:
        # As REST answers it, so proxies and retrying clients see the same status.
        set_status(self.execution_context.context, status_code, headers)


def set_status(context: object, status_code: int, headers: Mapping[str, str] | None = None) -> None:
    """Give the HTTP response of a GraphQL request `status_code` and `headers`."""
    response = getattr(context, "response", None)
    if response is not None:
        response.status_code = status_code
        response.headers.update(headers or {})


def unavailable_error(cause: ServiceUnavailable, **where: Any) -> GraphQLError:
    """`SERVICE_UNAVAILABLE` with `retryAfterSeconds`, at the field in `where` if any."""
    extensions = {"code": SERVICE_UNAVAILABLE_CODE, "retryAfterSeconds": cause.retry_after_seconds}
    return GraphQLError(cause.message, extensions=extensions, **where)


def unauthenticated_error(context: object, cause: Unauthenticated) -> GraphQLError:
    """`UNAUTHENTICATED`, answered with HTTP 401 and the challenge REST sends."""
    set_status(context, 401, {"WWW-Authenticate": www_authenticate(cause)})
    return GraphQLError(cause.message, extensions={"code": UNAUTHENTICATED_CODE})


def _with_code(error: GraphQLError, code: str, message: str | None = None) -> GraphQLError:
    return GraphQLError(
        message=error.message if message is None else message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), "code": code},
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
