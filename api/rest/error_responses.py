"""How the REST door answers the service's domain errors and rejected bodies.

- `SecretNotFound` and `ReceiptNotFound` → 404, one body for every cause.
- `InvalidInput`, or a body field of the wrong type → 422 naming the field, never its value.
- `ServiceUnavailable` → 503 with `Retry-After`.
- `Unauthenticated` (token mode) → 401 with `WWW-Authenticate: Bearer …`.
- `StorageQuotaReached` → 507 (Insufficient Storage).
- A body that does not parse as JSON, or is empty → 400; one that is not a JSON object →
  400; one that repeats a key → 422; one that is not `application/json` → 415: with the
  GraphQL door's words (`api.http.media_types`).
"""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from api.access.authentication import www_authenticate
from api.domain import inputs
from api.domain.errors import (
    InvalidInput,
    ReceiptNotFound,
    SecretNotFound,
    ServiceUnavailable,
    StorageQuotaReached,
    Unauthenticated,
)
from api.http.json_bodies import MalformedJson
from api.http.media_types import NOT_AN_OBJECT, NOT_JSON, NOT_JSON_MEDIA_TYPE, is_json

logger = logging.getLogger(__name__)

# Only these keys of a validation error are safe: `input` and `ctx` may quote the rejected
# value, which is a secret or a passphrase.
_SAFE_ERROR_KEYS = ("type", "loc", "msg")
# What pydantic says of a whole body that is not an object.
_NOT_AN_OBJECT_TYPES = frozenset({"model_attributes_type", "dict_type", "model_type"})


def error_response(
    status_code: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Return a REST error response: `{"detail": message}`."""
    return JSONResponse({"detail": message}, status_code, headers=dict(headers or {}))


def _field_error(error: Mapping[str, Any]) -> dict[str, Any]:
    safe = {key: error[key] for key in _SAFE_ERROR_KEYS if key in error}
    loc = safe.get("loc", ())
    if error.get("type") == "string_unicode" and len(loc) == 2:
        # A lone surrogate: the service's words for it, as the GraphQL door says them.
        safe["msg"] = inputs.not_text_message(str(loc[1]))
    return safe


async def _on_request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes) and exc.body:
        # FastAPI hands a body over unparsed only when its Content-Type is not JSON.
        return error_response(415, NOT_JSON_MEDIA_TYPE)
    errors = exc.errors()
    if any(error["type"] == "json_invalid" for error in errors):
        return error_response(400, NOT_JSON)
    if any(tuple(error["loc"]) == ("body",) and error["type"] == "missing" for error in errors):
        # No body at all: FastAPI never looked at its type. GraphQL checks the type first.
        if not is_json(request.headers.get("content-type")):
            return error_response(415, NOT_JSON_MEDIA_TYPE)
        return error_response(400, NOT_JSON)
    if any(
        tuple(error["loc"]) == ("body",) and error["type"] in _NOT_AN_OBJECT_TYPES
        for error in errors
    ):
        return error_response(400, NOT_AN_OBJECT)
    return JSONResponse({"detail": [_field_error(error) for error in errors]}, status_code=422)


async def _on_malformed_json(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MalformedJson)
    if exc.status_code == 422:
        # Shaped like every other 422 of this door.
        detail = [{"type": "json_repeated_key", "loc": ["body"], "msg": exc.message}]
        return JSONResponse({"detail": detail}, status_code=422)
    return error_response(exc.status_code, exc.message)


async def _on_invalid_input(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    where = "query" if exc.field in request.query_params else "body"
    detail = [{"type": "value_error", "loc": [where, exc.field], "msg": exc.message}]
    return JSONResponse({"detail": detail}, status_code=422)


async def _on_secret_not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, SecretNotFound.message)


async def _on_receipt_not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, ReceiptNotFound.message)


async def _on_service_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceUnavailable)
    # At capacity is the service working as designed (the metric counts it); a database that
    # does not answer is an operator's business.
    level = logging.DEBUG if exc.message == ServiceUnavailable.AT_CAPACITY else logging.WARNING
    logger.log(level, "REST 503: %s", exc.message)
    return error_response(503, exc.message, {"Retry-After": str(exc.retry_after_seconds)})


async def _on_unauthenticated(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Unauthenticated)
    return error_response(401, exc.message, {"WWW-Authenticate": www_authenticate(exc)})


async def _on_storage_quota_reached(request: Request, exc: Exception) -> Response:
    return error_response(507, StorageQuotaReached.message)


def install_error_handlers(app: FastAPI) -> None:
    """Register the REST door's handlers for domain errors and rejected bodies."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(MalformedJson, _on_malformed_json)
    app.add_exception_handler(InvalidInput, _on_invalid_input)
    app.add_exception_handler(SecretNotFound, _on_secret_not_found)
    app.add_exception_handler(ReceiptNotFound, _on_receipt_not_found)
    app.add_exception_handler(ServiceUnavailable, _on_service_unavailable)
    app.add_exception_handler(Unauthenticated, _on_unauthenticated)
    app.add_exception_handler(StorageQuotaReached, _on_storage_quota_reached)
