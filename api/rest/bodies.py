"""REST routes whose JSON bodies are read by the parser both doors share.

FastAPI reads a body with `Request.json()`, which takes the last of two equal keys and
answers its own words for a body that is not UTF-8 or nests too deeply. The routes here
read it with `api.http.json_bodies.parse_json` instead, so REST refuses exactly the
bodies GraphQL refuses, with the same status and words.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from api.http.json_bodies import parse_json


class StrictJsonRequest(Request):
    """A request whose `json()` refuses what the shared parser refuses (`MalformedJson`)."""

    async def json(self) -> Any:
        """Parse the body once with the shared parser."""
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An `APIRoute` that hands its endpoint a `StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler so it reads the body through the shared parser."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler
