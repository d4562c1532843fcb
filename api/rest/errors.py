"""Exception handlers: domain errors and failures become JSON bodies that leak nothing."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from api.errors import InvalidInput, SecretNotFound
from api.headers import SECURITY_HEADERS

logger = logging.getLogger(__name__)

UNAVAILABLE_DETAIL = "Service temporarily unavailable: the database does not answer"
UNSUPPORTED_MEDIA_DETAIL = "Content-Type must be application/json"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Only these keys of a validation error are safe: `input` and `ctx` may quote the rejected
# value, which is a secret or a passphrase.
_SAFE_ERROR_KEYS = ("type", "loc", "msg")


def _validation_error(loc: list[str | int], msg: str, error_type: str) -> dict[str, Any]:
    return {"type": error_type, "loc": loc, "msg": msg}


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if isinstance(exc.body, bytes) and exc.body:
        # FastAPI hands a body over unparsed only when its Content-Type is not JSON.
        return JSONResponse({"detail": UNSUPPORTED_MEDIA_DETAIL}, status_code=415)
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


def _allowed_methods(request: Request) -> str:
    probe = {key: request.scope.get(key) for key in ("type", "path", "root_path", "app")}
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**probe, "method": method, "headers": [], "query_string": b""})[0]
            == Match.FULL
            for route in request.app.router.routes
        )
    )


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        # Starlette names only the methods of the first route on the path; list them all.
        exc.headers = {**(exc.headers or {}), "Allow": _allowed_methods(request)}
    return await http_exception_handler(request, exc)


async def _on_database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The exception text may hold SQL parameters; log only its type.
    logger.warning("database unavailable: %s", type(exc).__name__)
    return JSONResponse({"detail": UNAVAILABLE_DETAIL}, status_code=503)


async def _on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers this outside every middleware, so the protective headers come here.
    headers = {name.decode(): value.decode() for name, value in SECURITY_HEADERS}
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Register every exception handler of the REST API on `app`."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(HTTPException, _on_http_exception)
    app.add_exception_handler(InvalidInput, _on_invalid_input)
    app.add_exception_handler(SecretNotFound, _on_secret_not_found)
    for error in (DBAPIError, PoolTimeoutError, OSError):
        app.add_exception_handler(error, _on_database_unavailable)
    app.add_exception_handler(Exception, _on_unexpected_error)
