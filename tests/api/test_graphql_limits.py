"""GraphQL defences: depth, aliases, tokens, batching, introspection, masked errors."""

from typing import Any

import httpx
import pytest

from api.gql.error_responses import UNEXPECTED_ERROR_MESSAGE


async def post(client: httpx.AsyncClient, payload: Any) -> httpx.Response:
    return await client.post("/graphql", json=payload)


async def test_depth_limit(client: httpx.AsyncClient, configure: Any) -> None:
    # The schema is one level deep (introspection is not counted), so test at a lower setting.
    configure(GRAPHQL_MAX_DEPTH="0")
    body = (await post(client, {"query": "{ limits { maxSecretBytes } }"})).json()
    assert body["data"] is None
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_token_limit(client: httpx.AsyncClient) -> None:
    fields = " ".join("maxSecretBytes" for _ in range(1200))
    body = (await post(client, {"query": f"{{ limits {{ {fields} }} }}"})).json()
    assert body["data"] is None
    assert "token" in body["errors"][0]["message"].lower()


async def test_alias_limit(client: httpx.AsyncClient) -> None:
    fields = " ".join(f"a{i}: limits {{ maxSecretBytes }}" for i in range(16))
    body = (await post(client, {"query": f"{{ {fields} }}"})).json()
    assert body["data"] is None
    assert "aliases" in body["errors"][0]["message"]


async def test_batching_is_off(client: httpx.AsyncClient) -> None:
    query = {"query": "{ limits { maxSecretBytes } }"}
    response = await post(client, [query, query])
    assert response.status_code == 400


async def test_introspection_is_on_by_default(client: httpx.AsyncClient) -> None:
    body = (await post(client, {"query": "{ __schema { queryType { name } } }"})).json()
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_introspection_can_be_switched_off(client: httpx.AsyncClient, configure: Any) -> None:
    configure(GRAPHQL_INTROSPECTION="false")
    body = (await post(client, {"query": "{ __schema { queryType { name } } }"})).json()
    assert body["data"] is None
    assert "introspection" in body["errors"][0]["message"].lower()
    ordinary = (await post(client, {"query": "{ limits { maxSecretBytes } }"})).json()
    assert ordinary["data"]["limits"]["maxSecretBytes"] == 65536


async def test_validation_errors_are_not_masked(client: httpx.AsyncClient) -> None:
    body = (await post(client, {"query": "{ limits { nope } }"})).json()
    assert body["errors"][0]["message"] == "Cannot query field 'nope' on type 'Limits'."


async def test_unexpected_errors_are_masked_and_not_logged_verbatim(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.domain import service

    async def broken(**_: Any) -> str:
        raise RuntimeError("internal detail canary-8c1e")

    monkeypatch.setattr(service, "reveal_secret", broken)
    query = 'mutation { revealSecret(secretKey: "k", passphrase: "canary-pass-55") { __typename } }'
    body = (await post(client, {"query": query})).json()
    assert body["errors"][0]["message"] == UNEXPECTED_ERROR_MESSAGE
    assert "canary-8c1e" not in str(body)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "RuntimeError" in logged
    assert "canary-8c1e" not in logged
    assert "canary-pass-55" not in logged
