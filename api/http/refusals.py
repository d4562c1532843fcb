"""Refusals that no route makes (unknown path, wrong method, body too large, a crash).

They come from routing, middleware or Starlette itself, so one handler answers them for
the whole app, in the shape of the door the path belongs to: `{"detail": …}` for REST,
`{"errors": [{"message", "extensions": {"code"}}]}` under `/graphql`.
"""

from collections.abc import Callable, Mapping

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import Scope

from api.http.methods import allowed_methods
from api.http.security_headers import SECURITY_HEADERS

ErrorResponder = Callable[[int, str, Mapping[str, str] | None], Response]
"""Builds a door's error response from a status, a message and extra headers."""

INTERNAL_ERROR = "Internal Server Error"


class ErrorShapes:
    """Which door's error shape a path gets: the first matching prefix, else the default."""

    def __init__(self, default: ErrorResponder, by_prefix: Mapping[str, ErrorResponder]) -> None:
        self.default = default
        self.by_prefix = dict(by_prefix)

    def for_scope(self, scope: Scope) -> ErrorResponder:
        """Return the responder for the request in `scope`."""
        path: str = scope.get("path", "")
        for prefix, responder in self.by_prefix.items():
            if path == prefix or path.startswith(prefix + "/"):
                return responder
        return self.default


def install_error_handlers(app: FastAPI, shapes: ErrorShapes) -> None:
    """Answer HTTP errors and unexpected exceptions of the whole app in each door's shape."""

    async def on_http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the methods of the first route on the path; list them all.
            headers["Allow"] = allowed_methods(request.scope)
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        return shapes.for_scope(request.scope)(exc.status_code, str(exc.detail), headers)

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        # Starlette answers this outside every middleware, so the protective headers come here.
        return shapes.for_scope(request.scope)(500, INTERNAL_ERROR, SECURITY_HEADERS)

    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected_error)
