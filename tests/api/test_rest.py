"""The REST contract, end to end through the ASGI stack, on both backends."""

import re

import httpx
import pytest

NOT_FOUND = {"detail": "Secret not found"}


async def create(client: httpx.AsyncClient, secret: str = "my_secret", **extra: object) -> str:
    body = {"secret": secret, "passphrase": "my_passphrase", **extra}
    response = await client.post("/generate", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["secret_key"])


async def test_generate_returns_key_and_expiry(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/generate", json={"secret": "my_secret", "passphrase": "my_passphrase"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"secret_key", "receipt_key", "expires_at", "public_id"}
    assert re.fullmatch(r"rcpt_[A-Za-z0-9_-]{16}", body["public_id"])
    assert re.fullmatch(r"[0-9a-f]{32}", body["secret_key"])
    assert re.fullmatch(r"[0-9a-f]{32}", body["receipt_key"])
    assert body["receipt_key"] != body["secret_key"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["expires_at"])
    assert response.headers["cache-control"] == "no-store"


async def test_reveal_by_get_once_then_404(client: httpx.AsyncClient) -> None:
    key = await create(client)
    first = await client.get(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert first.status_code == 200
    assert first.json() == {"secret": "my_secret"}
    assert first.headers["cache-control"] == "no-store"
    second = await client.get(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert second.status_code == 404
    assert second.json() == NOT_FOUND


async def test_reveal_by_post_once_then_404(client: httpx.AsyncClient) -> None:
    key = await create(client)
    first = await client.post(f"/secrets/{key}", json={"passphrase": "my_passphrase"})
    assert first.status_code == 200
    assert first.json() == {"secret": "my_secret"}
    second = await client.post(f"/secrets/{key}", json={"passphrase": "my_passphrase"})
    assert second.status_code == 404


async def test_burn_destroys_unread(client: httpx.AsyncClient) -> None:
    key = await create(client)
    burned = await client.delete(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert burned.status_code == 204
    assert burned.content == b""
    assert burned.headers["cache-control"] == "no-store"
    after = await client.get(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert after.status_code == 404
    again = await client.delete(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert again.status_code == 404
    assert again.json() == NOT_FOUND


async def test_burn_with_wrong_passphrase_keeps_secret(client: httpx.AsyncClient) -> None:
    key = await create(client)
    burned = await client.delete(f"/secrets/{key}", params={"passphrase": "nope"})
    assert burned.status_code == 404
    revealed = await client.get(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert revealed.json() == {"secret": "my_secret"}


async def test_wrong_passphrase_keeps_the_secret(client: httpx.AsyncClient) -> None:
    key = await create(client)
    wrong = await client.get(f"/secrets/{key}", params={"passphrase": "wrong"})
    assert wrong.status_code == 404
    right = await client.get(f"/secrets/{key}", params={"passphrase": "my_passphrase"})
    assert right.json() == {"secret": "my_secret"}


async def test_not_found_bodies_are_byte_identical(client: httpx.AsyncClient) -> None:
    revealed = await create(client)
    await client.get(f"/secrets/{revealed}", params={"passphrase": "my_passphrase"})
    wrong = await create(client)
    responses = [
        await client.get(f"/secrets/{'0' * 32}", params={"passphrase": "my_passphrase"}),
        await client.get(f"/secrets/{revealed}", params={"passphrase": "my_passphrase"}),
        await client.get(f"/secrets/{wrong}", params={"passphrase": "wrong"}),
        await client.get("/secrets/not-a-key", params={"passphrase": "my_passphrase"}),
        await client.post(f"/secrets/{'f' * 32}", json={"passphrase": "x"}),
    ]
    assert {r.status_code for r in responses} == {404}
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["content-length"] for r in responses}) == 1
    assert responses[0].content == b'{"detail":"Secret not found"}'


@pytest.mark.parametrize(
    "secret",
    [
        "line one\nline two\r\nline three",
        "nul\u0000byte and \u0000\u0000 more",
        "emoji 🔐🗝️ and ünïcödé 漢字",
        " leading and trailing spaces ",
        "\t",
    ],
)
async def test_secret_round_trips_byte_for_byte(client: httpx.AsyncClient, secret: str) -> None:
    key = await create(client, secret=secret)
    response = await client.post(f"/secrets/{key}", json={"passphrase": "my_passphrase"})
    assert response.json()["secret"] == secret
    assert response.json()["secret"].encode() == secret.encode()


async def test_unicode_passphrase(client: httpx.AsyncClient) -> None:
    body = {"secret": "s", "passphrase": "pässwörd 🔑\u0000"}
    key = (await client.post("/generate", json=body)).json()["secret_key"]
    response = await client.post(f"/secrets/{key}", json={"passphrase": "pässwörd 🔑\u0000"})
    assert response.json() == {"secret": "s"}


async def test_ttl_is_honoured_in_expires_at(client: httpx.AsyncClient) -> None:
    from datetime import UTC, datetime

    response = await client.post(
        "/generate", json={"secret": "s", "passphrase": "p", "ttl_seconds": 120}
    )
    expires = datetime.strptime(response.json()["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    remaining = expires.replace(tzinfo=UTC) - datetime.now(UTC)
    assert 115 <= remaining.total_seconds() <= 121


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_openapi_documents_routes_without_graphql(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert not [path for path in spec["paths"] if path.startswith("/graphql")]
    reveal = spec["paths"]["/secrets/{secret_key}"]
    for method in ("get", "post", "delete"):
        assert {"404", "422"} <= set(reveal[method]["responses"])
    assert "422" in spec["paths"]["/generate"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    assert schemas["CreateSecretRequest"]["examples"]
    assert schemas["CreatedSecretResponse"]["examples"]


async def test_openapi_documents_every_failure_with_an_example(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    secret_routes = [
        spec["paths"]["/generate"]["post"],
        *spec["paths"]["/secrets/{secret_key}"].values(),
    ]
    for operation in secret_routes:
        responses = operation["responses"]
        assert {"422", "429", "503"} <= set(responses)
        for status in ("422", "429", "503"):
            assert responses[status]["content"]["application/json"]["example"]
    for operation in (
        spec["paths"]["/generate"]["post"],
        spec["paths"]["/secrets/{secret_key}"]["post"],
    ):
        assert {"413", "415"} <= set(operation["responses"])
    assert "503" in spec["paths"]["/readyz"]["get"]["responses"]
