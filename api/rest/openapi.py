"""What the OpenAPI document says each REST route may answer besides success."""

from typing import Any

from pydantic import BaseModel, ConfigDict

from api.access.rate_limits import TOO_MANY_REQUESTS
from api.domain.errors import (
    ReceiptNotFound,
    SecretNotFound,
    ServiceUnavailable,
    StorageQuotaReached,
    Unauthenticated,
)
from api.http.media_types import NOT_JSON, NOT_JSON_MEDIA_TYPE
from api.settings import Settings

Responses = dict[int | str, dict[str, Any]]
# The limit with every setting at its default (no environment read): what the formula in
# `Settings.request_body_limit` gives when MAX_REQUEST_BYTES is unset.
_DEFAULT_BODY_LIMIT = Settings.model_construct().request_body_limit


class ErrorResponse(BaseModel):
    """A failure with a human-readable reason."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "Secret not found"}]})

    detail: str


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before the next attempt can succeed.",
        "schema": {"type": "integer", "minimum": 1},
    }
}


def _error(description: str, example: object, **extra: Any) -> dict[str, Any]:
    return {
        "model": ErrorResponse,
        "description": description,
        "content": {"application/json": {"example": {"detail": example}}},
        **extra,
    }


NOT_FOUND: Responses = {
    404: _error(
        "Unknown key, wrong passphrase, already revealed or expired: "
        "one identical body for every case.",
        SecretNotFound.message,
    )
}
BAD_BODY: Responses = {
    400: _error(
        "The body is empty, not JSON, not UTF-8, nests too deeply, or is not a JSON object.",
        NOT_JSON,
    ),
    413: _error(
        "The body is larger than MAX_REQUEST_BYTES, by default "
        "`6 * MAX_SECRET_BYTES + 6 * MAX_PASSPHRASE_LENGTH + 4096`.",
        f"Request body too large: at most {_DEFAULT_BODY_LIMIT} bytes",
    ),
    415: _error("The body is not `application/json`.", NOT_JSON_MEDIA_TYPE),
}
UNAVAILABLE: Responses = {
    503: _error(
        "The database does not answer (down, or every connection busy); retry after "
        "`Retry-After` seconds.",
        ServiceUnavailable.message,
        headers=_RETRY_AFTER,
    )
}
RATE_LIMITED: Responses = {
    429: _error(
        "Too many requests from this client; retry after `Retry-After` seconds.",
        TOO_MANY_REQUESTS,
        headers=_RETRY_AFTER,
    )
}
INVALID: Responses = {
    422: {
        "description": "A field is missing, has the wrong type or breaks a limit; the "
        "rejected value is never quoted. Unknown fields are refused too (`extra_forbidden`), "
        "so a misspelt `ttl` cannot silently become the default lifetime, and so is a JSON "
        "object that repeats a key (`json_repeated_key`), which a proxy and this service "
        "could read differently. A query-string passphrase must be given once, as UTF-8.",
        "content": {
            "application/json": {
                "example": {
                    "detail": [
                        {
                            "type": "value_error",
                            "loc": ["body", "passphrase"],
                            "msg": "passphrase must be at most 1024 characters",
                        }
                    ]
                }
            }
        },
    }
}
# The routes that hash are also refused when hashing is at capacity (`api.domain.admission`).
_BUSY_OR_UNAVAILABLE: Responses = {
    503: _error(
        "Hashing is at capacity, or the database does not answer (down, or every connection "
        "busy); retry after `Retry-After` seconds.",
        ServiceUnavailable.AT_CAPACITY,
        headers=_RETRY_AFTER,
    )
}
SECRET_ROUTE: Responses = {**INVALID, **RATE_LIMITED, **_BUSY_OR_UNAVAILABLE}
RECEIPT_NOT_FOUND: Responses = {
    404: _error("Unknown, malformed or purged receipt key.", ReceiptNotFound.message)
}
RECEIPT_ROUTE: Responses = {**RATE_LIMITED, **UNAVAILABLE}
CREATE_ROUTE: Responses = {
    401: _error(
        "CREATE_AUTH=token and the request has no valid creator token (missing, unknown or "
        "revoked: one body for every case).",
        Unauthenticated.message,
        headers={
            "WWW-Authenticate": {
                "description": 'The challenge: `Bearer realm="onetime-secrets"`, with '
                '`error="invalid_token"` when a token was sent.',
                "schema": {"type": "string"},
            }
        },
    ),
    507: _error(
        "Storing this secret would pass MAX_STORED_BYTES or MAX_LIVE_SECRETS; nothing was "
        "stored. Room comes back as secrets are revealed, burned, revoked or expire.",
        StorageQuotaReached.message,
    ),
}
