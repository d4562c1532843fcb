"""The GraphQL endpoint: the offline-GraphiQL router, refusing malformed requests in kind.

Strawberry answers a request it cannot parse with a plain-text 400, and a body that is not
UTF-8, nests too deeply, holds an integer too long to parse or is not a JSON object makes
it fail with a 500. Here the body is read by the parser the REST door uses
(`api.http.json_bodies`), so each of those is the 400 REST gives, with REST's words, a
repeated key the same 422, and a body that is not JSON the same 415, in the GraphQL response
shape with a code (`api.gql.error_responses`). `variables` and `extensions` in a GET's query string
are read by the same parser.
"""

from typing import Any

from cross_web import HTTPException
from fastapi import Request, Response
from strawberry import UNSET
from strawberry.http.types import QueryParams

from api.gql.error_responses import error_response
from api.gql.graphiql import OfflineGraphQLRouter
from api.http.json_bodies import MalformedJson, parse_json
from api.http.media_types import NOT_AN_OBJECT, NOT_JSON_MEDIA_TYPE, is_json

_QUERY_STRING_OBJECTS = ("variables", "extensions")


class SafeGraphQLRouter(OfflineGraphQLRouter):
    """A GraphQL router that answers hostile requests with JSON 4xx, never a 500."""

    def decode_json(self, data: str | bytes) -> object:
        """Parse a request body: an object (or a list, were batching on) passes."""
        value = parse_json(data)
        batching = self.schema.config.batching_config is not None
        if not isinstance(value, dict) and not (batching and isinstance(value, list)):
            raise HTTPException(400, NOT_AN_OBJECT)
        return value

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        """Read a GET's parameters; `variables` and `extensions` must be JSON objects (or null).

        A repeated key is the 422 of a body; anything else that is not an object, a 400.
        """
        parsed: dict[str, Any] = dict(params)
        for name in _QUERY_STRING_OBJECTS:
            text = parsed.get(name)
            if not text:
                continue
            try:
                value = parse_json(text)
            except MalformedJson as error:
                if error.status_code != 400:
                    raise
                value = UNSET
            if value is not None and not isinstance(value, dict):
                raise HTTPException(400, f"{name} must be a JSON object")
            parsed[name] = value
        return parsed

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
        except MalformedJson as error:
            return error_response(error.status_code, error.message)
        except HTTPException as error:
            return error_response(error.status_code, error.reason)
        return response
