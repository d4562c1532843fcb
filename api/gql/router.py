"""The GraphQL endpoint: the offline-GraphiQL router, with every malformed request a JSON 400.

Strawberry answers a request it cannot parse with a plain-text 400, and a body that is not
UTF-8, nests too deeply or is not a JSON object makes it fail with a 500. Here each of those
is a 400, and a body that is not JSON a 415, with a GraphQL-shaped JSON body:
`{"errors": [{"message": …}]}`.
"""

import json
from typing import Any

from cross_web import HTTPException
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from strawberry import UNSET

from api.graphiql import OfflineGraphQLRouter

NOT_AN_OBJECT = "Expected a JSON object"
NOT_JSON = "Unable to parse request body as JSON"
UNSUPPORTED_MEDIA = "Content-Type must be application/json"


class SafeGraphQLRouter(OfflineGraphQLRouter):
    """A GraphQL router that answers hostile request bodies with JSON 400s, never a 500."""

    def decode_json(self, data: str | bytes) -> object:
        """Parse a request body, `variables` or `extensions`; only objects (or batches) pass."""
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, RecursionError):
            raise HTTPException(400, NOT_JSON) from None
        if not isinstance(value, dict | list):
            raise HTTPException(400, NOT_AN_OBJECT)
        return value

    async def run(  # type: ignore[override]
        self, request: Request, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response:
        """Execute the request; a request Strawberry rejects gets a JSON error body."""
        if (
            request.scope["type"] == "http"
            and request.method == "POST"
            and "application/json" not in request.headers.get("content-type", "")
        ):
            return _error(415, UNSUPPORTED_MEDIA)
        try:
            response: Response = await super().run(request, context, root_value)
        except HTTPException as error:
            return _error(error.status_code, error.reason)
        return response


def _error(status_code: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code)
