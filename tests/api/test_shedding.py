"""Shedding at capacity: which requests are refused before routing, and how they are found.

The routes come from the REST router (`api.app.HASHING_ROUTES`, `shed_routes`), never from a
list of paths, so a renamed route keeps its shedding. The in-process test finds the
operations from the OpenAPI document: a route renamed behind shedding's back, or a new one
that hashes, would be refused by the service instead, after routing, and this would fail.
"""

import re
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from api.app import HASHING_ROUTES
from api.http.shedding import shed_routes
from tests.api.test_headers import assert_protected

KEY = "0" * 32


def _body(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, str] | None:
    """A body with every required field of the operation's JSON schema, or None."""
    if "requestBody" not in operation:
        return None
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return {name: "x" for name in schema.get("required", [])}


async def test_every_rest_operation_refused_at_capacity_is_refused_before_routing(
    app: FastAPI, client: httpx.AsyncClient, configure: Any
) -> None:
    document = (await client.get("/openapi.json")).json()
    configure(HASH_QUEUE_TIMEOUT_SECONDS="1", HASH_WORKERS="1")
    gate = app.state.hasher.gate  # the one the new settings built
    shed: dict[tuple[str, str], bool] = {}
    async with gate.admitted():
        gate.held_seconds = 10.0  # measured: a slot is held far longer than the bound
        for template, operations in document["paths"].items():
            path = re.sub(r"\{[^}]+\}", KEY, template)
            for method, operation in operations.items():
                response = await client.request(
                    method.upper(),
                    path,
                    params={"passphrase": "p"},
                    json=_body(document, operation),
                )
                if response.status_code == 503:
                    # The request log, inside the shedding, gives every request it sees an id.
                    shed[method.upper(), template] = "x-request-id" not in response.headers
                    assert_protected(response)
    assert shed, "no REST operation was refused at capacity"
    assert [operation for operation, early in shed.items() if not early] == []
    assert len(shed) == len(HASHING_ROUTES)


async def _endpoint() -> None:
    """Stands for a route that hashes."""


def test_shed_routes_take_the_path_of_the_route() -> None:
    router = APIRouter()
    router.add_api_route("/renamed/{key}", _endpoint, methods=["POST"])
    (route,) = shed_routes(router.routes, {_endpoint: 0.5})
    assert route.path.match("/renamed/abc")
    assert not route.path.match("/renamed/abc/def")
    assert (route.methods, route.share) == (frozenset({"POST"}), 0.5)


def test_shed_routes_refuse_an_endpoint_without_a_route() -> None:
    with pytest.raises(LookupError, match="_endpoint"):
        shed_routes(APIRouter().routes, {_endpoint: 1.0})
