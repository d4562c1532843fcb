"""Exception handlers: domain errors and failures become JSON bodies that leak nothing."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from api.errors import InvalidInput, SecretNotFound

logger = logging.getLogger(__name__)

UNAVAILABLE_DETAIL = "Service temporarily unavailable: the database does not answer"
# Only these keys of a validation error are safe: `input` and `ctx` may quote the rejected
# value, which is a secret or a passphrase.
_SAFE_ERROR_KEYS = ("type", "loc", "msg")


def _validation_error(loc: list[str | int], msg: str, error_type: str) -> dict[str, Any]:
    return {"type": error_type, "loc": loc, "msg": msg}


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {key: error[key] for key in _SAFE_ERROR_KEYS if key in error} for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def _on_invalid_input(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidInput)
    where = "query" if exc.field in request.query_params else "body"
    detail = [_validation_error([where, exc.field], exc.message, "value_error")]
    return JSONResponse({"detail": detail}, status_code=422)


async def _on_secret_not_found(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": SecretNotFound.message}, status_code=404)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may hold SQL parameters; log only its type.
    logger.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse({"detail": UNAVAILABLE_DETAIL}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception handler of the REST API on `app`."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(InvalidInput, _on_invalid_input)
    app.add_exception_handler(SecretNotFound, _on_secret_not_found)
    for error in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(error, _on_database_unavailable)
