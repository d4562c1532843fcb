"""Protective headers on every response: each route, each error, REST and GraphQL alike.

`Cache-Control: no-store` keeps secrets out of browser and proxy caches, `nosniff` stops a
browser from reading a JSON answer as a script, `no-referrer` keeps URLs (which hold secret
keys) from leaking to other sites.
"""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from api.app import create_app

SECURITY_HEADERS = {
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
KEY = "0" * 32
QUERY = "{ limits { maxTtlSeconds } }"
JSON = {"content-type": "application/json"}

# (method, path, request options, expected status). Every documented operation is here, with
# a success and a failure where it has both, and every undocumented route and error kind.
REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/generate", {"json": {"secret": "s", "passphrase": "p"}}, 200),
    ("POST", "/generate", {"json": {"secret": ""}}, 422),
    ("POST", "/generate", {"content": b'{"secret": ', "headers": JSON}, 400),
    ("POST", "/generate", {"content": b"\xff", "headers": JSON}, 400),
    ("POST", "/generate", {"content": b"secret=s", "headers": {"content-type": "text/plain"}}, 415),
    ("POST", "/generate", {"content": b"x" * 500_000, "headers": JSON}, 413),
    ("POST", "/generate", {"content": b'{"secret": "a", "secret": "b"}', "headers": JSON}, 422),
    ("GET", "/generate", {"headers": {f"x-h{n}": "v" for n in range(120)}}, 431),
    ("GET", f"/secrets/{KEY}", {"params": {"passphrase": "p"}}, 404),
    ("GET", f"/secrets/{KEY}", {}, 422),
    ("POST", f"/secrets/{KEY}", {"json": {"passphrase": "p"}}, 404),
    ("POST", f"/secrets/{KEY}", {"json": {}}, 422),
    ("DELETE", f"/secrets/{KEY}", {"params": {"passphrase": "p"}}, 404),
    ("DELETE", f"/secrets/{KEY}", {}, 422),
    ("PUT", f"/secrets/{KEY}", {}, 405),
    ("GET", f"/receipts/{KEY}", {}, 404),
    ("DELETE", f"/receipts/{KEY}", {}, 404),
    ("GET", "/generate", {}, 405),
    ("GET", "/healthz", {}, 200),
    ("HEAD", "/healthz", {}, 200),
    ("HEAD", f"/secrets/{KEY}", {"params": {"passphrase": "p"}}, 405),
    ("GET", "/readyz", {}, 200),
    ("GET", "/nope", {}, 404),
    ("GET", "/openapi.json", {}, 200),
    ("GET", "/docs", {}, 200),
    ("GET", "/redoc", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("GET", "/graphql", {"headers": {"accept": "text/html"}}, 200),
    ("GET", "/graphql", {"params": {"query": QUERY}}, 200),
    ("POST", "/graphql", {"json": {"query": QUERY}}, 200),
    ("POST", "/graphql", {"json": {"query": "{ nope }"}}, 200),
    ("POST", "/graphql", {"content": b"\xff", "headers": JSON}, 400),
    ("POST", "/graphql", {"content": b"q", "headers": {"content-type": "text/plain"}}, 415),
    ("POST", "/graphql", {"content": b"x" * 500_000, "headers": JSON}, 413),
    (
        "POST",
        "/graphql",
        {"content": b'{"query": "{ a }", "query": "{ b }"}', "headers": JSON},
        422,
    ),
    ("POST", "/graphql", {"headers": {f"x-h{n}": "v" for n in range(120)}}, 431),
    ("PUT", "/graphql", {}, 405),
]


def assert_protected(response: httpx.Response) -> None:
    found = {name: response.headers.get(name) for name in SECURITY_HEADERS}
    assert found == SECURITY_HEADERS, (response.request.method, response.request.url)


@pytest.mark.parametrize(
    ("method", "path", "options", "status"),
    REQUESTS,
    ids=[f"{method} {path} {status}" for method, path, _, status in REQUESTS],
)
async def test_every_response_is_protected(
    client: httpx.AsyncClient, method: str, path: str, options: dict[str, Any], status: int
) -> None:
    response = await client.request(method, path, **options)
    assert response.status_code == status, response.text
    assert_protected(response)


async def test_every_documented_operation_is_covered(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    documented = {
        (method.upper(), re.sub(r"\{[^}]+\}", KEY, path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    covered = {(method, path) for method, path, _, _ in REQUESTS}
    assert documented <= covered


async def test_a_created_secret_revealed_is_protected(client: httpx.AsyncClient) -> None:
    created = await client.post("/generate", json={"secret": "s", "passphrase": "p"})
    key = created.json()["secret_key"]
    revealed = await client.post(f"/secrets/{key}", json={"passphrase": "p"})
    assert revealed.status_code == 200
    assert_protected(revealed)
    created = await client.post("/generate", json={"secret": "s", "passphrase": "p"})
    key = created.json()["secret_key"]
    burnt = await client.delete(f"/secrets/{key}", params={"passphrase": "p"})
    assert burnt.status_code == 204
    assert_protected(burnt)
    mutation = (
        'mutation { createSecret(secret: "s", passphrase: "p") '
        "{ ... on CreatedSecret { secretKey } } }"
    )
    created = await client.post("/graphql", json={"query": mutation})
    key = created.json()["data"]["createSecret"]["secretKey"]
    reveal = (
        f'mutation {{ revealSecret(secretKey: "{key}", passphrase: "p") '
        "{ ... on RevealedSecret { secret } } }"
    )
    revealed = await client.post("/graphql", json={"query": reveal})
    assert revealed.json()["data"]["revealSecret"] == {"secret": "s"}
    assert_protected(revealed)


async def test_rate_limited_answer_is_protected(client: httpx.AsyncClient, configure: Any) -> None:
    configure(RATE_LIMIT_CREATE="1/minute")
    headers = {"x-forwarded-for": "203.0.113.77"}
    responses = [
        await client.post("/generate", json={"secret": "s", "passphrase": "p"}, headers=headers)
        for _ in range(3)
    ]
    limited = [response for response in responses if response.status_code == 429]
    assert limited, [response.status_code for response in responses]
    assert_protected(limited[0])


async def test_docs_assets_are_protected(client: httpx.AsyncClient) -> None:
    page = (await client.get("/docs")).text + (await client.get("/redoc")).text
    assets = set(re.findall(r'(?:src|href)="(/[^"]+)"', page))
    assert assets
    for asset in assets:
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert_protected(response)


async def test_graphiql_assets_are_nosniff_and_immutable(client: httpx.AsyncClient) -> None:
    # GraphiQL's files are public and carry their version in the path; they alone may be
    # cached, for good. They still get `nosniff` and `no-referrer`.
    page = (await client.get("/graphql", headers={"accept": "text/html"})).text
    assets = set(re.findall(r'(?:src|href)="(/graphql-assets/[^"]+)"', page))
    assert assets
    for asset in assets:
        assert re.search(r"@\d+\.\d+\.\d+/", asset), asset
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] in {
            "no-store",
            "public, max-age=31536000, immutable",
        }


@pytest.fixture
async def failing_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """A second instance of the application, with one route that fails unexpectedly."""
    application = create_app(app.state.settings)

    @application.get("/fail", include_in_schema=False)
    async def fail() -> None:
        raise RuntimeError("an unexpected failure")

    async with LifespanManager(application):
        yield application


async def test_unexpected_error_is_protected_json(failing_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/fail")
    assert response.status_code == 500
    assert json.loads(response.text) == {"detail": "Internal Server Error"}
    assert "unexpected failure" not in response.text
    assert_protected(response)
