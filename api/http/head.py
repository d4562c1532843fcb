"""`HEAD` wherever `GET` works: the same status and headers, no body.

FastAPI routes answer only the methods they name, so `HEAD /healthz` was `405`. Here a
`HEAD` request runs as a `GET` and its body is dropped on the way out; `Content-Length`
stays, describing the body a `GET` would get, as RFC 9110 allows. A `GET` that changes state
(`api.http.methods.changes_state_on_get`) is not run for a `HEAD`: the answer is `405`
with `Allow`, before anything is read or spent.
"""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.http.methods import allowed_methods, is_state_changing, route_for
from api.http.refusals import ErrorShapes

METHOD_NOT_ALLOWED = "Method Not Allowed"


class HeadAsGetMiddleware:
    """Answers `HEAD` as the `GET` of the same path would, without the body."""

    def __init__(self, app: ASGIApp, shapes: ErrorShapes) -> None:
        self.app = app
        self.shapes = shapes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run a `HEAD` as a `GET` (or refuse it); pass any other request through."""
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        if is_state_changing(route_for(scope, "GET")):
            headers = {"Allow": allowed_methods(scope)}
            response = self.shapes.for_scope(scope)(405, METHOD_NOT_ALLOWED, headers)
            await response(scope, receive, send_without_body)
            return
        # A copy: the server reads `method` from its own scope to leave the body out too.
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            # Routing records the route in the scope it was given; the access log reads it.
            if "route" in as_get:
                scope["route"] = as_get["route"]
