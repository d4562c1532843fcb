"""A pure ASGI middleware that refuses requests with too many or too large header fields.

uvicorn's default HTTP parser (httptools) sets no bound: one 32 MB header, or 2,000 of them,
reached the routes and got `200`. The server has read them by the time the application
sees the request, so this cannot save that memory (a proxy in front should bound it, as
nginx does by default); it keeps oversized headers from costing anything more (parsing,
logging, rate-limit keys) and tells the client why: `431 Request Header Fields Too Large`,
in the error shape of the door the path belongs to. It holds under `uvicorn main:app` with
no extra flag, whichever HTTP implementation uvicorn picks.
"""

from starlette.types import ASGIApp, Receive, Scope, Send

from api.http.refusals import ErrorShapes
from api.settings import Settings

_STATUS = 431


class RequestHeaderLimitMiddleware:
    """Answers `431` to a request with too many header fields, or too many bytes of them.

    The bounds are `MAX_REQUEST_HEADERS` fields and `MAX_REQUEST_HEADER_BYTES` of names and
    values together, read from `settings` per request.
    """

    def __init__(self, app: ASGIApp, shapes: ErrorShapes, settings: Settings) -> None:
        self.app = app
        self.shapes = shapes
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a request whose header fields pass either limit; pass the rest on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        headers = scope["headers"]
        count_limit, bytes_limit = settings.max_request_headers, settings.max_request_header_bytes
        if len(headers) > count_limit or _size(headers) > bytes_limit:
            message = (
                f"Request header fields too large: at most {count_limit} fields and "
                f"{bytes_limit} bytes"
            )
            await self.shapes.for_scope(scope)(_STATUS, message, None)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _size(headers: list[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in headers)
