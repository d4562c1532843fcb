"""The GraphQL endpoint: the offline-GraphiQL router, refusing malformed requests in kind.

Strawberry answers a request it cannot parse with a plain-text 400, and a body that is not
UTF-8, nests too deeply, holds an integer too long to parse or is not a JSON object makes
it fail with a 500. Here each of those is a 400, and a body that is not JSON a 415, in the
GraphQL response shape with a code (`api.gql.errors`).
"""

import json
from typing import Any

from cross_web import HTTPException
from fastapi import Request, Response
from strawberry import UNSET

from api.gql.errors import error_response
from api.gql.graphiql import OfflineGraphQLRouter
from api.plumbing.media_types import NOT_AN_OBJECT, NOT_JSON, NOT_JSON_MEDIA_TYPE, is_json


class SafeGraphQLRouter(OfflineGraphQLRouter):
    """A GraphQL router that answers hostile request bodies with JSON 400s, never a 500."""

    def decode_json(self, data: str | bytes) -> object:
        """Parse a request body, `variables` or `extensions`; only objects (or batches) pass."""
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            # ValueError covers malformed JSON, bytes that are not UTF-8 and integers longer
            # than Python converts (4,300 digits).
            raise HTTPException(400, NOT_JSON) from None
        if not isinstance(value, dict | list):
            raise HTTPException(400, NOT_AN_OBJECT)
        return value

    async def run(  # type: ignore[override]
        self, request: Request, context: Any = UNSET, root_value: Any = UNSET
    ) -> Response:
        """Execute the request; a request Strawberry rejects gets a GraphQL-shaped error."""
        if request.scope["type"] == "http" and request.method == "POST":
            if not is_json(request.headers.get("content-type")):
                return error_response(415, NOT_JSON_MEDIA_TYPE)
            # Strawberry matches "application/json" as a case-sensitive substring; the type
            # was parsed above, so it hears the canonical spelling.
            request.scope["headers"] = [
                (name, b"application/json" if name == b"content-type" else value)
                for name, value in request.scope["headers"]
            ]
            request = Request(request.scope, request.receive)
        try:
            response: Response = await super().run(request, context, root_value)
        except HTTPException as error:
            return error_response(error.status_code, error.reason)
        return response
