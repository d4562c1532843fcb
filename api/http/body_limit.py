"""A pure ASGI middleware that bounds the request body before it is read into memory.

The limit applies to the bodies the application reads. When a route starts reading, a
declared `Content-Length` over the limit is refused at once, without reading a byte of the
body; a body without one (chunked) is counted as it is pulled in, and the moment it passes
the limit, reading stops and the client gets the same `413`. Either way the server holds at
most one chunk beyond the limit, whatever the client sends.

A route that never reads a body (`GET /healthz`, `GET /receipts/{key}`, …) answers as if
there were none, whatever its size: the server discards what nobody reads, so there is
nothing to protect, and a `413` there would be an answer the OpenAPI document cannot
describe. So `413` is documented exactly on the routes that take a body.
"""

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.refusals import ErrorShapes
from api.settings import Settings

_STATUS = 413


class BodyTooLarge(HTTPException):
    """Raised from `receive` once the body passes the limit; the middleware answers `413`.

    An `HTTPException`, so a framework that turns other errors of body parsing into `400`
    lets it through.
    """

    def __init__(self) -> None:
        super().__init__(status_code=_STATUS, detail="Request body too large")


class RequestBodyLimitMiddleware:
    """Answers `413`, in the error shape of the path's door, to a body read over the limit.

    The limit is `settings.request_body_limit`, read per request.
    """

    def __init__(self, app: ASGIApp, shapes: ErrorShapes, settings: Settings) -> None:
        self.app = app
        self.shapes = shapes
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a declared body over the limit when it is first read; count one as it comes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.settings.request_body_limit
        declared = _content_length(scope)
        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            if exceeded or (declared is not None and declared > limit):
                exceeded = True
                raise BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded and not response_started:
                return  # whatever the app made of the error, the answer is the 413 below
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            # Once the body is too large, any failure of the app is a consequence of it.
            if not exceeded or response_started:
                raise
        if exceeded and not response_started:
            await self._too_large(scope, receive, send, limit)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"Request body too large: at most {limit} bytes"
        await self.shapes.for_scope(scope)(_STATUS, message, None)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None  # the server rejects a malformed length; the body is counted anyway
